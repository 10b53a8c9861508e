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
"""The encoder that maps an image to the generator's W+ latent, the starting point of test-time optimization."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_semgan.networks.equalized import EqualizedConv2d, EqualizedLinear
from monai_semgan.networks.image_discriminator import ResidualDownBlock
from monai_semgan.ops import setup_kernel

__all__ = ["LatentEncoder"]


class LatentEncoder(nn.Module):
    """ResNet-style encoder from an image to W+: one ``w_dim`` vector per style input of the generator.

    The trunk is the image discriminator's (residual down-sampling blocks from ``resolution`` to 4 x 4); a linear head
    predicts the offset of every W+ entry from the generator's mean W, which is held in the ``latent_mean`` buffer.
    The head starts at zero, so an untrained encoder returns the mean latent (the usual start of GAN inversion)
    instead of a random point far from W.

    Args:
        resolution: input size, a power of two from 8 to 1024 (the generator's resolution).
        num_ws: number of W+ entries (``SemanticGenerator.num_ws``).
        w_dim: width of W.
        in_channels: image channels.
        channel_base: channels at resolution ``r`` are ``min(channel_base * channel_multiplier // r, channel_max)``.
        channel_multiplier: StyleGAN2's channel multiplier.
        channel_max: cap on channels.
        blur_kernel: 1-D FIR taps.

    Raises:
        ValueError: on an unsupported resolution or non-positive sizes.
    """

    def __init__(
        self,
        resolution: int = 256,
        num_ws: int = 14,
        w_dim: int = 512,
        in_channels: int = 1,
        channel_base: int = 16384,
        channel_multiplier: int = 2,
        channel_max: int = 512,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if resolution < 8 or resolution > 1024 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two from 8 to 1024, got {resolution}.")
        if min(num_ws, w_dim, in_channels, channel_base, channel_multiplier, channel_max) < 1:
            raise ValueError("num_ws, w_dim and channel counts must be positive.")

        def channels(r: int) -> int:
            return min(channel_base * channel_multiplier // r, channel_max)

        self.resolution = resolution
        self.in_channels = in_channels
        self.num_ws = num_ws
        self.w_dim = w_dim
        kernel = setup_kernel(blur_kernel)
        self.from_image = EqualizedConv2d(in_channels, channels(resolution), 1, activation="lrelu")
        log2 = int(math.log2(resolution))
        self.blocks = nn.Sequential(
            *(ResidualDownBlock(channels(2**i), channels(2 ** (i - 1)), kernel) for i in range(log2, 2, -1))
        )
        c4 = channels(4)
        self.conv = EqualizedConv2d(c4, c4, 3, activation="lrelu")
        self.fc = EqualizedLinear(c4 * 16, c4 * 2, activation="lrelu")
        self.head = EqualizedLinear(c4 * 2, num_ws * w_dim)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
        self.register_buffer("latent_mean", torch.zeros(w_dim))

    @torch.no_grad()
    def set_latent_mean(self, mean_w: torch.Tensor) -> None:
        """Anchor the output at the generator's mean W (``SemanticGenerator.mean_w()``, ``[w_dim]``).

        Raises:
            ValueError: when ``mean_w`` is not ``[w_dim]``.
        """
        if tuple(mean_w.shape) != (self.w_dim,):
            raise ValueError(f"mean_w must have shape [{self.w_dim}], got {tuple(mean_w.shape)}.")
        self.latent_mean.copy_(mean_w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Encode ``[N, in_channels, R, R]`` images in [-1, 1] into W+ ``[N, num_ws, w_dim]``.

        Raises:
            ValueError: when the input does not have the encoder's channels and resolution.
        """
        if image.ndim != 4 or tuple(image.shape[1:]) != (self.in_channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images [N, {self.in_channels}, {self.resolution}, {self.resolution}], got "
                f"{tuple(image.shape)}."
            )
        x = self.conv(self.blocks(self.from_image(image)))
        offset = self.head(self.fc(x.flatten(1)))
        return self.latent_mean + offset.view(-1, self.num_ws, self.w_dim)
