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
"""StyleGAN2's residual image discriminator, trained on unlabeled images with the non-saturating logistic loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_semgan.networks.equalized import EqualizedConv2d, EqualizedLinear
from monai_semgan.ops import setup_kernel

__all__ = ["ImageDiscriminator", "MinibatchStdDev", "ResidualDownBlock"]


class ResidualDownBlock(nn.Module):
    """Two 3 x 3 convolutions (the second downsampling by 2) plus a blurred 1 x 1 skip, summed with gain 1/sqrt(2).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        blur_kernel: 1-D FIR taps.
        conv_clamp: activation clamp, or ``None``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, blur_kernel: torch.Tensor, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu", clamp=conv_clamp)
        self.conv1 = EqualizedConv2d(
            in_channels, out_channels, 3, activation="lrelu", down=2, blur_kernel=blur_kernel, clamp=conv_clamp
        )
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, down=2, blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, H, W]`` to ``[N, C_out, H / 2, W / 2]``."""
        skip = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + skip) * (1.0 / math.sqrt(2.0))


class MinibatchStdDev(nn.Module):
    """Append the standard deviation across groups of samples as extra feature maps (discourages mode collapse).

    Args:
        group_size: samples per group (the batch is split into groups of this size, or of the batch when smaller).
        num_channels: number of appended feature maps.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` to ``[N, C + num_channels, H, W]``."""
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            g = math.gcd(n, g)
        f = self.num_channels
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [N / G, F]
        y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class ImageDiscriminator(nn.Module):
    """Residual StyleGAN2 discriminator with minibatch standard deviation; returns one logit per image.

    Args:
        resolution: input size, a power of two from 8 to 1024.
        in_channels: image channels.
        channel_base: channels at resolution ``r`` are ``min(channel_base * channel_multiplier // r, channel_max)``.
        channel_multiplier: StyleGAN2's channel multiplier.
        channel_max: cap on channels.
        blur_kernel: 1-D FIR taps.
        mbstd_group_size: group size of the minibatch standard deviation.
        conv_clamp: activation clamp, or ``None``.

    Raises:
        ValueError: on an unsupported resolution.
    """

    def __init__(
        self,
        resolution: int = 256,
        in_channels: int = 1,
        channel_base: int = 16384,
        channel_multiplier: int = 2,
        channel_max: int = 512,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        mbstd_group_size: int = 4,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 8 or resolution > 1024 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two from 8 to 1024, got {resolution}.")

        def channels(r: int) -> int:
            return min(channel_base * channel_multiplier // r, channel_max)

        kernel = setup_kernel(blur_kernel)
        self.resolution = resolution
        self.in_channels = in_channels
        self.from_image = EqualizedConv2d(in_channels, channels(resolution), 1, activation="lrelu", clamp=conv_clamp)
        log2 = int(math.log2(resolution))
        self.blocks = nn.Sequential(
            *(ResidualDownBlock(channels(2**i), channels(2 ** (i - 1)), kernel, conv_clamp) for i in range(log2, 2, -1))
        )
        c4 = channels(4)
        self.mbstd = MinibatchStdDev(mbstd_group_size)
        self.conv = EqualizedConv2d(c4 + 1, c4, 3, activation="lrelu", clamp=conv_clamp)
        self.fc = EqualizedLinear(c4 * 16, c4, activation="lrelu")
        self.out = EqualizedLinear(c4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score ``[N, in_channels, R, R]`` images; returns logits ``[N, 1]``.

        Raises:
            ValueError: when the input does not have the discriminator's channels and resolution.
        """
        if image.ndim != 4 or image.shape[1:] != (self.in_channels, self.resolution, self.resolution):
            raise ValueError(
                f"expected images [N, {self.in_channels}, {self.resolution}, {self.resolution}], got "
                f"{tuple(image.shape)}."
            )
        x = self.blocks(self.from_image(image))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))
