# Copyright (c) monai-semgan contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""StyleGAN2's style-modulated convolution, and the layers of the synthesis network built on it."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_semgan.networks.equalized import EqualizedLinear
from monai_semgan.ops import bias_act, upfirdn2d, upsample2d

__all__ = ["ModulatedConv2d", "StyledConv", "StyledOutput"]


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled per sample by a style vector, optionally demodulated.

    Two equivalent formulations:

    * non-fused (default): scale the input by the styles, run one convolution shared by the batch, scale the output
      by the demodulation coefficients. Uses the plain (cuDNN / oneDNN) convolution and is the faster one to train.
    * fused: fold styles and demodulation into per-sample weights and run a grouped convolution (groups = batch), the
      formulation of the original StyleGAN2 paper. Kept for comparison and for inference at batch 1.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (3 for synthesis convolutions, 1 for the image / label outputs).
        style_dim: width of the W latent.
        demodulate: normalize each output channel to unit expected magnitude (off for the outputs).
        up: 1, or 2 for a transposed convolution followed by the anti-aliasing blur.
        blur_kernel: 1-D FIR taps for ``up=2``.
        fused: use the grouped-convolution formulation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        up: int = 1,
        blur_kernel: torch.Tensor | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"up must be 1 or 2, got {up}.")
        if up == 2 and blur_kernel is None:
            raise ValueError("blur_kernel is required when up=2.")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.affine = EqualizedLinear(style_dim, in_channels, bias_init=1.0)
        self.demodulate = demodulate
        self.up = up
        self.fused = fused
        self.padding = kernel_size // 2
        self.register_buffer("blur_kernel", blur_kernel if blur_kernel is not None else torch.ones(1), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Convolve ``[N, C_in, H, W]`` modulated by ``w`` ``[N, style_dim]`` to ``[N, C_out, H * up, W * up]``."""
        # styles and demodulation in float32 under autocast: demodulation divides by a sum of squares over
        # C_in * k * k terms, which bf16's 8-bit mantissa would round; only the convolution itself runs in bf16
        with torch.autocast(x.device.type, enabled=False):
            styles = self.affine(w.float() if w.dtype in (torch.float16, torch.bfloat16) else w)  # [N, C_in]
            weight = self.weight * self.weight_gain  # [C_out, C_in, k, k]
            demod = None
            if self.demodulate:
                # E[y^2] per output channel = sum_{i,k} (w * s_i)^2; rsqrt of it is the demodulation coefficient
                demod = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # [N, C_out]
        if self.fused:
            return self._forward_grouped(x, styles, weight, demod)
        if weight.shape[-1] == 1 and self.up == 1:
            # 1 x 1 (ToRGB / ToSEG): per-sample weights are tiny, so a batched matrix product is cheaper than scaling
            # the whole activation first
            per_sample = weight[None, :, :, 0, 0] * styles[:, None, :]  # [N, C_out, C_in]
            if demod is not None:
                per_sample = per_sample * demod[:, :, None]
            n, c_in, h, w = x.shape
            out = torch.bmm(per_sample.to(x.dtype), x.reshape(n, c_in, h * w))
            return out.reshape(n, -1, h, w)
        x = x * styles.to(x.dtype)[:, :, None, None]
        if self.up == 2:
            # transposed conv (stride 2, no padding) gives 2H + k - 2; the blur with (taps - 2) - (k - 1) + 2 extra
            # zeros brings it to exactly 2H
            x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            x = self._blur_after_transpose(x)
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if demod is not None:
            x = x * demod.to(x.dtype)[:, :, None, None]
        return x

    def _blur_after_transpose(self, x: torch.Tensor) -> torch.Tensor:
        taps, k = self.blur_kernel.shape[0], self.weight.shape[-1]
        p = (taps - 2) - (k - 1)
        pad0, pad1 = (p + 1) // 2 + 1, p // 2 + 1
        return upfirdn2d(x, self.blur_kernel, padding=(pad0, pad1, pad0, pad1), gain=4.0)

    def _forward_grouped(
        self, x: torch.Tensor, styles: torch.Tensor, weight: torch.Tensor, demod: torch.Tensor | None
    ) -> torch.Tensor:
        n, c_in, h, w = x.shape
        c_out, _, k, _ = weight.shape
        per_sample = weight[None] * styles[:, None, :, None, None]  # [N, C_out, C_in, k, k]
        if demod is not None:
            per_sample = per_sample * demod[:, :, None, None, None]
        x = x.reshape(1, n * c_in, h, w)
        per_sample = per_sample.to(x.dtype)
        if self.up == 2:
            per_sample = per_sample.transpose(1, 2).reshape(n * c_in, c_out, k, k)
            x = F.conv_transpose2d(x, per_sample, stride=2, groups=n)
            x = x.reshape(n, c_out, x.shape[2], x.shape[3])
            return self._blur_after_transpose(x)
        x = F.conv2d(x, per_sample.reshape(n * c_out, c_in, k, k), padding=self.padding, groups=n)
        return x.reshape(n, c_out, h, w)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"in={i}, out={o}, kernel={k}, up={self.up}, demodulate={self.demodulate}, fused={self.fused}"


class StyledConv(nn.Module):
    """Modulated 3 x 3 convolution + per-pixel noise + bias + leaky ReLU: one layer of the synthesis network.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        style_dim: width of the W latent.
        resolution: output resolution (the size of this layer's noise map).
        up: 1, or 2 to double the resolution.
        blur_kernel: 1-D FIR taps.
        fused: grouped-convolution modulation (see :class:`ModulatedConv2d`).
        clamp: clamp activations (for float16), or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        resolution: int,
        up: int = 1,
        blur_kernel: torch.Tensor | None = None,
        fused: bool = False,
        clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, 3, style_dim, demodulate=True, up=up, blur_kernel=blur_kernel, fused=fused
        )
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | str = "random") -> torch.Tensor:
        """Apply the layer.

        Args:
            x: ``[N, C_in, H, W]`` features.
            w: ``[N, style_dim]`` style latent.
            noise: ``"random"``, ``"const"``, ``"none"``, or a ``[N or 1, 1, R, R]`` tensor (the inverter's maps).

        Returns:
            ``[N, C_out, R, R]`` features.
        """
        x = self.conv(x, w)
        if isinstance(noise, torch.Tensor):
            x = x + noise.to(x.dtype) * self.noise_strength
        elif noise == "random":
            x = x + torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype) * (
                self.noise_strength
            )
        elif noise == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        elif noise != "none":
            raise ValueError(f"noise must be 'random', 'const', 'none' or a tensor, got {noise!r}.")
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", clamp=self.clamp)


class StyledOutput(nn.Module):
    """A 1 x 1 modulated convolution without demodulation plus bias, added to the upsampled previous output.

    With ``out_channels`` image channels it is StyleGAN2's ToRGB; with label channels it is SemanticGAN's ToSEG, which
    reads the same features and the same W+ index as its ToRGB twin.

    Args:
        in_channels: feature channels.
        out_channels: image or label channels.
        style_dim: width of the W latent.
        blur_kernel: 1-D FIR taps used to upsample the previous output.
        clamp: clamp the output (for float16), or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        blur_kernel: torch.Tensor,
        clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.clamp = clamp
        self.register_buffer("blur_kernel", blur_kernel, persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``conv(x, w) + bias (+ upsample2x(skip))`` at the resolution of ``x``."""
        out = bias_act(self.conv(x, w), self.bias.to(x.dtype), clamp=self.clamp)
        if skip is not None:
            out = out + upsample2d(skip, self.blur_kernel)
        return out
