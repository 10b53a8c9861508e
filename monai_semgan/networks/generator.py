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
"""SemanticGAN's generator: a StyleGAN2 synthesis network with a label branch (ToSEG) beside the image branch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_semgan.networks.mapping import MappingNetwork
from monai_semgan.networks.modulated_conv import StyledConv, StyledOutput
from monai_semgan.ops import setup_kernel

__all__ = ["INPUT_SPACES", "NOISE_MODES", "SemanticGenerator", "SynthesisBlock"]

NOISE_MODES = ("random", "const", "none")
INPUT_SPACES = ("z", "w", "w+")


class SynthesisBlock(nn.Module):
    """One resolution step: an upsampling styled conv, a styled conv, and the image and label outputs.

    Args:
        in_channels: channels at the previous resolution.
        out_channels: channels at this resolution.
        image_channels: image output channels.
        label_channels: label output channels.
        style_dim: width of W.
        resolution: this block's output resolution.
        blur_kernel: 1-D FIR taps.
        fused_modconv: grouped-convolution modulation.
        conv_clamp: activation clamp, or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_channels: int,
        label_channels: int,
        style_dim: int,
        resolution: int,
        blur_kernel: torch.Tensor,
        fused_modconv: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv0 = StyledConv(
            in_channels, out_channels, style_dim, resolution, 2, blur_kernel, fused_modconv, conv_clamp
        )
        self.conv1 = StyledConv(
            out_channels, out_channels, style_dim, resolution, 1, blur_kernel, fused_modconv, conv_clamp
        )
        self.to_image = StyledOutput(out_channels, image_channels, style_dim, blur_kernel, conv_clamp)
        self.to_label = StyledOutput(out_channels, label_channels, style_dim, blur_kernel, conv_clamp)
        self.resolution = resolution

    def forward(
        self,
        x: torch.Tensor,
        image: torch.Tensor,
        label: torch.Tensor,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor | str],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply the block; ``ws`` is ``[N, 3, w_dim]`` (conv0, conv1, outputs), ``noise`` two entries."""
        x = self.conv0(x, ws[:, 0], noise[0])
        x = self.conv1(x, ws[:, 1], noise[1])
        # ToRGB and ToSEG read the same features with the same W+ entry
        image = self.to_image(x, ws[:, 2], image)
        label = self.to_label(x, ws[:, 2], label)
        return x, image, label


class SemanticGenerator(nn.Module):
    """Joint image + label StyleGAN2 generator of SemanticGAN (Li et al., CVPR 2021).

    The synthesis network runs from a learned 4 x 4 constant up to ``resolution``; at every resolution a ToRGB reads
    the features into the image and a ToSEG twin reads the same features, with the same W+ entry, into the label
    logits, each added to its upsampled previous output. Images come out in about [-1, 1]; labels as logits with one
    channel (binary, threshold at 0) or ``label_channels`` classes (argmax), matching real masks that enter the
    discriminator one-hot scaled to [-1, 1].

    Channels at resolution ``r`` are ``min(channel_base * channel_multiplier // r, channel_max)``: the defaults give the
    paper's 256 x 256 model (512 channels up to 64 x 64, then 256, 128); ``resolution=64, channel_base=2048,
    channel_multiplier=1, channel_max=128`` a small CPU model.

    Args:
        resolution: output size, a power of two from 8 to 1024.
        image_channels: image channels (1 for CT / MRI).
        label_channels: label channels (1 binary, or the number of classes).
        z_dim: width of Z.
        w_dim: width of W.
        mapping_layers: depth of the mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the mapping network.
        channel_base: channel numerator (see above).
        channel_multiplier: StyleGAN2's channel multiplier (2 in the paper's config).
        channel_max: cap on channels.
        blur_kernel: 1-D FIR taps for up-sampling.
        fused_modconv: grouped-convolution modulation (slower to train; see :class:`ModulatedConv2d`).
        conv_clamp: clamp activations to this magnitude (256 for float16 training), or ``None``.

    Raises:
        ValueError: on an unsupported resolution or non-positive channel counts.
    """

    def __init__(
        self,
        resolution: int = 256,
        image_channels: int = 1,
        label_channels: int = 1,
        z_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        channel_base: int = 16384,
        channel_multiplier: int = 2,
        channel_max: int = 512,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        fused_modconv: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 8 or resolution > 1024 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two from 8 to 1024, got {resolution}.")
        if min(image_channels, label_channels, z_dim, w_dim, channel_base, channel_multiplier, channel_max) < 1:
            raise ValueError("channel counts and latent widths must be positive.")
        self.resolution = resolution
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.channel_base = channel_base
        self.channel_multiplier = channel_multiplier
        self.channel_max = channel_max
        log2 = int(math.log2(resolution))
        kernel = setup_kernel(blur_kernel)

        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        c4 = self.channels(4)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.conv4 = StyledConv(c4, c4, w_dim, 4, 1, kernel, fused_modconv, conv_clamp)
        self.to_image4 = StyledOutput(c4, image_channels, w_dim, kernel, conv_clamp)
        self.to_label4 = StyledOutput(c4, label_channels, w_dim, kernel, conv_clamp)
        self.blocks = nn.ModuleList(
            SynthesisBlock(
                self.channels(2 ** (i - 1)),
                self.channels(2**i),
                image_channels,
                label_channels,
                w_dim,
                2**i,
                kernel,
                fused_modconv,
                conv_clamp,
            )
            for i in range(3, log2 + 1)
        )
        self.num_ws = 2 * log2 - 2
        self.noise_resolutions = [4] + [2**i for i in range(3, log2 + 1) for _ in range(2)]
        self.num_noise = len(self.noise_resolutions)

    def channels(self, resolution: int) -> int:
        """Feature channels at ``resolution``."""
        return min(self.channel_base * self.channel_multiplier // resolution, self.channel_max)

    def make_noise(self, batch_size: int = 1, device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Fresh Gaussian noise maps, one per noise input, each ``[batch_size, 1, R, R]``."""
        device = device if device is not None else self.const.device
        return [torch.randn(batch_size, 1, r, r, device=device) for r in self.noise_resolutions]

    def const_noise(self) -> list[torch.Tensor]:
        """The stored noise maps used by ``noise_mode="const"`` (copies, ``[1, 1, R, R]`` each)."""
        return [layer.noise_const.clone() for layer in self._noisy_layers()]

    def _noisy_layers(self) -> list[StyledConv]:
        layers = [self.conv4]
        for block in self.blocks:
            layers += [block.conv0, block.conv1]
        return layers

    def mean_w(self, num_samples: int = 10000) -> torch.Tensor:
        """Mean of W, ``[w_dim]``: the tracked running mean, or an estimate from ``num_samples`` when never trained."""
        if not torch.any(self.mapping.w_avg != 0):
            return self.mapping.estimate_w_avg(num_samples).clone()
        return self.mapping.w_avg.clone()

    def latent_to_ws(
        self,
        latent: torch.Tensor,
        input_space: str = "z",
        truncation_psi: float = 1.0,
        mixing_prob: float = 0.0,
    ) -> torch.Tensor:
        """Turn a Z, W or W+ latent into W+ ``[N, num_ws, w_dim]``.

        Args:
            latent: ``[N, z_dim]`` (``"z"``), ``[N, w_dim]`` (``"w"``) or ``[N, num_ws, w_dim]`` (``"w+"``).
            input_space: ``"z"``, ``"w"`` or ``"w+"``.
            truncation_psi: pull W towards its mean (1: no truncation).
            mixing_prob: probability, per sample, of switching to a second random latent at a random W+ index
                (style mixing regularization; only for ``"z"``, 0.9 during training).

        Returns:
            the W+ latent.

        Raises:
            ValueError: on an unknown input space or a latent of the wrong shape.
        """
        if input_space not in INPUT_SPACES:
            raise ValueError(f"input_space must be one of {INPUT_SPACES}, got {input_space!r}.")
        if input_space == "z":
            w = self.mapping(latent)
            ws = w[:, None].expand(-1, self.num_ws, -1)
            if mixing_prob > 0:
                n = latent.shape[0]
                w2 = self.mapping(torch.randn_like(latent))
                cutoff = torch.randint(1, self.num_ws, (n,), device=latent.device)
                cutoff = torch.where(
                    torch.rand(n, device=latent.device) < mixing_prob, cutoff, torch.full_like(cutoff, self.num_ws)
                )
                take_second = torch.arange(self.num_ws, device=latent.device)[None, :] >= cutoff[:, None]
                ws = torch.where(take_second[:, :, None], w2[:, None], ws)
        elif input_space == "w":
            if latent.ndim != 2 or latent.shape[1] != self.w_dim:
                raise ValueError(f"a W latent must have shape [N, {self.w_dim}], got {tuple(latent.shape)}.")
            ws = latent[:, None].expand(-1, self.num_ws, -1)
        else:
            if latent.ndim != 3 or latent.shape[1:] != (self.num_ws, self.w_dim):
                raise ValueError(
                    f"a W+ latent must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(latent.shape)}."
                )
            ws = latent
        if truncation_psi != 1.0:
            w_avg = self.mapping.w_avg.to(ws.dtype)
            ws = w_avg + truncation_psi * (ws - w_avg)
        return ws

    def synthesis(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthesize the image and the label logits from W+.

        Args:
            ws: ``[N, num_ws, w_dim]``.
            noise_mode: ``"random"``, ``"const"`` or ``"none"``; ignored when ``noise`` is given.
            noise: ``num_noise`` maps ``[N or 1, 1, R, R]`` (see :attr:`noise_resolutions`), e.g. optimized ones.

        Returns:
            ``(image [N, image_channels, R, R], label_logits [N, label_channels, R, R])``.

        Raises:
            ValueError: on a W+ of the wrong shape, an unknown noise mode or a wrong number of noise maps.
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}.")
        if noise is None:
            if noise_mode not in NOISE_MODES:
                raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}.")
            noise = [noise_mode] * self.num_noise
        elif len(noise) != self.num_noise:
            raise ValueError(f"noise must hold {self.num_noise} maps, got {len(noise)}.")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], noise[0])
        image = self.to_image4(x, ws[:, 1])
        label = self.to_label4(x, ws[:, 1])
        for i, block in enumerate(self.blocks):
            x, image, label = block(x, image, label, ws[:, 2 * i + 1 : 2 * i + 4], noise[2 * i + 1 : 2 * i + 3])
        return image, label

    def forward(
        self,
        latent: torch.Tensor,
        input_space: str = "z",
        truncation_psi: float = 1.0,
        mixing_prob: float = 0.0,
        noise_mode: str = "random",
        noise: Sequence[torch.Tensor] | None = None,
        return_ws: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Generate images and label logits.

        Args:
            latent: Z ``[N, z_dim]``, W ``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]``.
            input_space: ``"z"``, ``"w"`` or ``"w+"``.
            truncation_psi: truncation towards the mean W.
            mixing_prob: style mixing probability (``"z"`` only).
            noise_mode: ``"random"``, ``"const"`` or ``"none"``.
            noise: explicit noise maps, overriding ``noise_mode``.
            return_ws: also return the W+ used (for the path-length penalty and the encoder).

        Returns:
            ``(image, label_logits)``, or ``(image, label_logits, ws)`` with ``return_ws``.
        """
        ws = self.latent_to_ws(latent, input_space, truncation_psi, mixing_prob)
        image, label = self.synthesis(ws, noise_mode, noise)
        return (image, label, ws) if return_ws else (image, label)
