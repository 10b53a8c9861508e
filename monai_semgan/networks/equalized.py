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
"""Equalized-learning-rate layers (Karras et al.): weights drawn from N(0, 1) and scaled at run time by
``lr_multiplier / sqrt(fan_in)``, so Adam sees every layer at the same scale."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_semgan.ops import bias_act, upfirdn2d

__all__ = ["EqualizedConv2d", "EqualizedLinear"]


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate and a fused bias + activation.

    Args:
        in_features: input width.
        out_features: output width.
        bias: learn a bias.
        bias_init: initial bias value (1 for style affines, so styles start at identity).
        lr_multiplier: learning-rate multiplier of weight and bias (0.01 in the mapping network).
        activation: ``"linear"``, ``"relu"`` or ``"lrelu"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, in_features]`` to ``[N, out_features]``."""
        weight = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain if self.bias is not None and self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return F.linear(x, weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None)
        return bias_act(F.linear(x, weight.to(x.dtype)), bias, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, activation={self.activation}"


class EqualizedConv2d(nn.Module):
    """2-D convolution with equalized learning rate, optional anti-aliased downsampling and fused bias + activation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        bias: learn a bias.
        activation: ``"linear"``, ``"relu"`` or ``"lrelu"``.
        down: 1, or 2 to blur with ``blur_kernel`` and convolve with stride 2 (the StyleGAN2 discriminator's way).
        blur_kernel: 1-D FIR taps (registered as a buffer by the caller and passed here).
        clamp: clamp the output (for float16 training), or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        blur_kernel: torch.Tensor | None = None,
        clamp: float | None = None,
    ) -> None:
        super().__init__()
        if down not in (1, 2):
            raise ValueError(f"down must be 1 or 2, got {down}.")
        if down == 2 and blur_kernel is None:
            raise ValueError("blur_kernel is required when down=2.")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.activation = activation
        self.down = down
        self.clamp = clamp
        self.register_buffer("blur_kernel", blur_kernel if blur_kernel is not None else torch.ones(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``[N, C_in, H, W]`` to ``[N, C_out, H / down, W / down]``."""
        weight = (self.weight * self.weight_gain).to(x.dtype)
        k = self.weight.shape[-1]
        if self.down == 2:
            # blur, then a strided convolution; (taps - 2) + (k - 1) zeros make the output exactly H / 2
            p = self.blur_kernel.shape[0] - 2 + k - 1
            x = upfirdn2d(x, self.blur_kernel, padding=((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
            x = F.conv2d(x, weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=k // 2)
        if self.activation == "linear" and self.clamp is None:
            return x + self.bias.to(x.dtype).reshape(1, -1, 1, 1) if self.bias is not None else x
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, bias, act=self.activation, clamp=self.clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"in={i}, out={o}, kernel={k}, down={self.down}, activation={self.activation}"
