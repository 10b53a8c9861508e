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
"""A straightforward StyleGAN2 port of monai_semgan's generator and image discriminator: the speed baseline.

Same architecture, same parameter and buffer names, different ops, written from the textbook description of
StyleGAN2 (Karras et al., CVPR 2020):

* modulated convolution always as per-sample weights (style-scaled, demodulated by the norm of each sample's weight)
  and one grouped convolution with ``groups = batch``; the upsampling one as a grouped ``conv_transpose2d`` followed
  by the blur;
* ``upfirdn2d`` by building the zero-stuffed tensor explicitly (``torch.zeros`` + strided assignment), ``F.pad``, a
  depthwise ``F.conv2d`` with the full 2-D kernel (outer product of the 1-D taps), then strided slicing;
* bias, activation and gain as three separate ops (``x + b``, ``F.leaky_relu``, ``* gain``).

:func:`make_baseline` deep-copies our networks and switches every layer that calls an op to a subclass whose
``forward`` is the textbook one, so ``baseline.load_state_dict(ours.state_dict())`` holds by construction (the
composition modules, e.g. the mapping network, the synthesis blocks and the residual blocks, only call their
children and are kept). Nothing from :mod:`monai_semgan.ops` runs in the baseline. :func:`check_baseline` verifies
that the two give the same outputs for the same weights.

Run ``python -m benchmarks.stylegan2_baseline`` to run the check on the small CPU configuration.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_semgan.networks import (
    EqualizedConv2d,
    EqualizedLinear,
    ImageDiscriminator,
    ModulatedConv2d,
    SemanticGenerator,
    StyledConv,
    StyledOutput,
)

__all__ = [
    "BaselineEqualizedConv2d",
    "BaselineEqualizedLinear",
    "BaselineModulatedConv2d",
    "BaselineStyledConv",
    "BaselineStyledOutput",
    "bias_act_naive",
    "check_baseline",
    "make_baseline",
    "upfirdn2d_naive",
]

_LRELU_SLOPE = 0.2
_ACT_GAIN = math.sqrt(2.0)


def upfirdn2d_naive(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter with the full 2-D kernel, downsample: the textbook way.

    Same conventions as :func:`monai_semgan.ops.upfirdn2d`: ``up - 1`` zeros after every sample, ``padding`` is
    ``(x0, x1, y0, y1)``, the filter is applied as a cross-correlation, every ``down``-th sample is kept.

    Args:
        x: ``[N, C, H, W]``.
        kernel: 1-D taps (the 2-D kernel is their outer product) or a 2-D kernel.
        up: upsampling factor.
        down: downsampling factor.
        padding: zeros added after upsampling, ``(x0, x1, y0, y1)``.
        gain: scale of the 2-D kernel.

    Returns:
        the filtered tensor.
    """
    n, c, h, w = x.shape
    if up > 1:
        stuffed = torch.zeros(n, c, h * up, w * up, dtype=x.dtype, device=x.device)
        stuffed[:, :, ::up, ::up] = x
        x = stuffed
    x = F.pad(x, list(padding))
    kernel2d = torch.outer(kernel, kernel) if kernel.ndim == 1 else kernel
    weight = (kernel2d * gain).to(device=x.device, dtype=x.dtype)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def bias_act_naive(
    x: torch.Tensor, bias: torch.Tensor | None, activation: str, clamp: float | None = None
) -> torch.Tensor:
    """``x + bias``, then the activation, then its gain, then the optional clamp, each as its own op.

    Args:
        x: ``[N, C, ...]``.
        bias: ``[C]`` or ``None``.
        activation: ``"linear"``, ``"relu"`` or ``"lrelu"``.
        clamp: clamp magnitude, or ``None``.

    Returns:
        the activated tensor.

    Raises:
        ValueError: on an unknown activation.
    """
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, _LRELU_SLOPE)
        x = x * _ACT_GAIN
    elif activation == "relu":
        x = F.relu(x)
        x = x * _ACT_GAIN
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}.")
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class BaselineEqualizedLinear(EqualizedLinear):
    """:class:`~monai_semgan.networks.EqualizedLinear` with a separate bias, activation and gain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, in_features]`` to ``[N, out_features]``."""
        x = F.linear(x, (self.weight * self.weight_gain).to(x.dtype))
        bias = self.bias * self.bias_gain if self.bias is not None else None
        return bias_act_naive(x, bias, self.activation)


class BaselineEqualizedConv2d(EqualizedConv2d):
    """:class:`~monai_semgan.networks.EqualizedConv2d` with the naive blur and a separate bias / activation / gain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``[N, C_in, H, W]`` to ``[N, C_out, H / down, W / down]``."""
        weight = (self.weight * self.weight_gain).to(x.dtype)
        k = self.weight.shape[-1]
        if self.down == 2:
            p = self.blur_kernel.shape[0] - 2 + k - 1
            x = upfirdn2d_naive(x, self.blur_kernel, padding=((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
            x = F.conv2d(x, weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=k // 2)
        return bias_act_naive(x, self.bias, self.activation, self.clamp)


class BaselineModulatedConv2d(ModulatedConv2d):
    """:class:`~monai_semgan.networks.ModulatedConv2d` always in the grouped formulation of the StyleGAN2 paper.

    The per-sample weights are ``w * s`` (style ``s`` per input channel), divided by their norm over input channels
    and taps when demodulating; the batch runs as one grouped convolution. ``fused`` is ignored.
    """

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Convolve ``[N, C_in, H, W]`` modulated by ``w`` ``[N, style_dim]`` to ``[N, C_out, H * up, W * up]``."""
        n, c_in, h, wd = x.shape
        c_out, _, k, _ = self.weight.shape
        styles = self.affine(w)  # [N, C_in]
        weight = self.weight[None] * self.weight_gain * styles[:, None, :, None, None]  # [N, C_out, C_in, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + 1e-8)  # [N, C_out]
            weight = weight * demod[:, :, None, None, None]
        weight = weight.to(x.dtype)
        x = x.reshape(1, n * c_in, h, wd)
        if self.up == 2:
            weight = weight.transpose(1, 2).reshape(n * c_in, c_out, k, k)
            x = F.conv_transpose2d(x, weight, stride=2, groups=n)
            x = x.reshape(n, c_out, x.shape[2], x.shape[3])
            # the transposed conv gives 2H + k - 2; the blur with these pads brings it to 2H
            p = (self.blur_kernel.shape[0] - 2) - (k - 1)
            pad0, pad1 = (p + 1) // 2 + 1, p // 2 + 1
            return upfirdn2d_naive(x, self.blur_kernel, padding=(pad0, pad1, pad0, pad1), gain=4.0)
        x = F.conv2d(x, weight.reshape(n * c_out, c_in, k, k), padding=self.padding, groups=n)
        return x.reshape(n, c_out, h, wd)


class BaselineStyledConv(StyledConv):
    """:class:`~monai_semgan.networks.StyledConv` with a separate bias / leaky ReLU / gain."""

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | str = "random") -> torch.Tensor:
        """Apply the layer (same arguments as :meth:`StyledConv.forward`)."""
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
        return bias_act_naive(x, self.bias, "lrelu", self.clamp)


class BaselineStyledOutput(StyledOutput):
    """:class:`~monai_semgan.networks.StyledOutput` (ToRGB / ToSEG) with the naive 2x upsampling of the skip."""

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``conv(x, w) + bias (+ upsample2x(skip))``."""
        out = bias_act_naive(self.conv(x, w), self.bias, "linear", self.clamp)
        if skip is not None:
            taps = self.blur_kernel.shape[0]
            p = taps - 2
            pad0, pad1 = (p + 1) // 2 + 1, p // 2
            out = out + upfirdn2d_naive(skip, self.blur_kernel, up=2, padding=(pad0, pad1, pad0, pad1), gain=4.0)
        return out


# layers are matched by their exact class (a subclass of ours would keep its own forward)
_BASELINE_CLASSES: dict[type, type] = {
    EqualizedLinear: BaselineEqualizedLinear,
    EqualizedConv2d: BaselineEqualizedConv2d,
    ModulatedConv2d: BaselineModulatedConv2d,
    StyledConv: BaselineStyledConv,
    StyledOutput: BaselineStyledOutput,
}


def _to_baseline(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for sub in module.modules():
        replacement = _BASELINE_CLASSES.get(type(sub))
        if replacement is not None:
            sub.__class__ = replacement
    return module


def make_baseline(
    generator: SemanticGenerator, image_discriminator: ImageDiscriminator
) -> tuple[SemanticGenerator, ImageDiscriminator]:
    """Baseline twins of our generator and image discriminator, with the same weights.

    Args:
        generator: our generator (left untouched).
        image_discriminator: our image discriminator (left untouched).

    Returns:
        deep copies whose op-calling layers run the textbook StyleGAN2 forward passes; their ``state_dict`` keys and
        shapes are those of the originals.
    """
    return _to_baseline(generator), _to_baseline(image_discriminator)  # type: ignore[return-value]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _outputs_and_grads(
    generator: nn.Module, discriminator: nn.Module, z: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Image, label and logits for ``z`` (const noise, eval mode) and the weight gradients of a scalar of them."""
    generator.zero_grad(set_to_none=True)
    discriminator.zero_grad(set_to_none=True)
    image, label = generator(z, noise_mode="const")
    logits = discriminator(image)
    (image.square().mean() + label.mean() + logits.sum()).backward()
    grads = [p.grad for p in list(generator.parameters()) + list(discriminator.parameters())]
    return [image.detach(), label.detach(), logits.detach()], grads


def check_baseline(
    generator: SemanticGenerator,
    image_discriminator: ImageDiscriminator,
    batch_size: int = 2,
    seed: int = 0,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    grad_rtol: float = 1e-8,
    perturb: bool = True,
) -> dict[str, float]:
    """Check that the baseline reproduces our networks: outputs, logits and weight gradients.

    Works on deep copies in eval mode (the originals are left untouched). Builds the baseline with
    :func:`make_baseline`, loads our ``state_dict`` into it (strict), and compares, for the same latent and
    ``noise_mode="const"``: the image, the label logits and the image discriminator's logits on that image, in the
    networks' own dtype; and, in float64 (where summation order no longer hides real differences), the gradients of
    a scalar of all three with respect to every weight of the generator and the discriminator.

    Args:
        generator: our generator.
        image_discriminator: our image discriminator.
        batch_size: samples.
        seed: seed of the latent and of the perturbation.
        atol: absolute tolerance of the outputs.
        rtol: relative tolerance of the outputs.
        grad_rtol: tolerance of the float64 gradients, relative to ``max(|grad|, 1)`` per tensor.
        perturb: set the zero-initialized parameters of the copies (biases, noise strengths) to small random values,
            so that they take part in the comparison.

    Returns:
        the largest absolute difference of ``image``, ``label`` and ``d_logits``, and the largest relative one of the
        float64 ``grads``.

    Raises:
        AssertionError: when a quantity differs by more than its tolerance.
    """
    generator, image_discriminator = copy.deepcopy(generator).eval(), copy.deepcopy(image_discriminator).eval()
    if perturb:
        rng = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in list(generator.parameters()) + list(image_discriminator.parameters()):
                if not torch.any(p != 0):
                    p.copy_(0.1 * torch.randn(p.shape, generator=rng))
    base_g, base_d = make_baseline(generator, image_discriminator)
    base_g.load_state_dict(generator.state_dict(), strict=True)
    base_d.load_state_dict(image_discriminator.state_dict(), strict=True)
    device = generator.const.device
    z = torch.randn(batch_size, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)

    names = ("image", "label", "d_logits")
    with torch.no_grad():
        ours = generator(z, noise_mode="const")
        ours = (*ours, image_discriminator(ours[0]))
        theirs = base_g(z, noise_mode="const")
        theirs = (*theirs, base_d(theirs[0]))
    diffs = {name: _max_diff(a, b) for name, a, b in zip(names, ours, theirs)}
    failed = [name for name, a, b in zip(names, ours, theirs) if not torch.allclose(a, b, rtol, atol)]

    nets = [net.double() for net in (generator, image_discriminator, base_g, base_d)]
    _, ours_grads = _outputs_and_grads(nets[0], nets[1], z.double())
    _, base_grads = _outputs_and_grads(nets[2], nets[3], z.double())
    diffs["grads"] = max(
        _max_diff(a, b) / max(float(a.abs().max()), 1.0) for a, b in zip(ours_grads, base_grads) if a is not None
    )
    if any((a is None) != (b is None) for a, b in zip(ours_grads, base_grads)) or diffs["grads"] > grad_rtol:
        failed.append("grads")
    if failed:
        raise AssertionError(f"baseline differs from monai_semgan in {failed}: max differences {diffs}.")
    return diffs


def _small_networks(fused_modconv: bool = False) -> tuple[SemanticGenerator, ImageDiscriminator]:
    generator = SemanticGenerator(
        resolution=64,
        z_dim=128,
        w_dim=128,
        mapping_layers=4,
        channel_base=2048,
        channel_multiplier=1,
        channel_max=128,
        fused_modconv=fused_modconv,
    )
    return generator, ImageDiscriminator(64, channel_base=2048, channel_multiplier=1, channel_max=128)


if __name__ == "__main__":
    for fused in (False, True):
        torch.manual_seed(0)
        print(f"fused_modconv={fused}: max differences {check_baseline(*_small_networks(fused))}")
