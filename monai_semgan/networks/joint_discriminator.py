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
"""SemanticGAN's joint image + label discriminator: a pix2pixHD-style multiscale PatchGAN on concat(image, mask)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["JointDiscriminator", "PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN: strided 4 x 4 convolutions with spectral norm, instance norm (not on the first layer), leaky ReLU.

    Layers: ``num_layers`` stride-2 convolutions doubling the channels from ``base_channels``, one stride-1
    convolution, and a stride-1 convolution to one logit per patch.

    Args:
        in_channels: image channels + label channels.
        base_channels: channels of the first layer.
        num_layers: number of stride-2 layers.
        max_channels: cap on channels.
    """

    def __init__(self, in_channels: int, base_channels: int = 64, num_layers: int = 3, max_channels: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(spectral_norm(nn.Conv2d(in_channels, base_channels, 4, 2, 2)), nn.LeakyReLU(0.2))
        ]
        channels = base_channels
        for i in range(1, num_layers + 1):
            prev, channels = channels, min(channels * 2, max_channels)
            stride = 2 if i < num_layers else 1
            layers.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(prev, channels, 4, stride, 2)),
                    nn.InstanceNorm2d(channels, affine=False),
                    nn.LeakyReLU(0.2),
                )
            )
        layers.append(spectral_norm(nn.Conv2d(channels, 1, 4, 1, 2)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return every layer's output; the last is the patch logits ``[N, 1, h, w]``."""
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class JointDiscriminator(nn.Module):
    """Multiscale PatchGAN over ``concat(image, label)``, judged with the hinge loss plus feature matching.

    The same architecture runs on the input and on ``num_scales - 1`` successively 2x average-pooled copies.

    Args:
        image_channels: image channels.
        label_channels: label channels (1 binary, or the number of classes, one-hot in [-1, 1]).
        num_scales: number of scales (3 in pix2pixHD and SemanticGAN).
        base_channels: channels of each scale's first layer (64).
        num_layers: stride-2 layers per scale.
        max_channels: cap on channels.
    """

    def __init__(
        self,
        image_channels: int = 1,
        label_channels: int = 1,
        num_scales: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        max_channels: int = 512,
    ) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}.")
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.scales = nn.ModuleList(
            PatchDiscriminator(image_channels + label_channels, base_channels, num_layers, max_channels)
            for _ in range(num_scales)
        )

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> list[list[torch.Tensor]]:
        """Score image-label pairs.

        Args:
            image: ``[N, image_channels, H, W]`` in [-1, 1].
            label: ``[N, label_channels, H, W]``: real masks one-hot scaled to [-1, 1], or generated label logits.

        Returns:
            per scale (finest first), the list of layer outputs; ``[-1]`` of each is the patch logits.

        Raises:
            ValueError: when image and label disagree in batch or size, or have the wrong number of channels.
        """
        if image.ndim != 4 or label.ndim != 4 or image.shape[0] != label.shape[0] or image.shape[2:] != label.shape[2:]:
            raise ValueError(
                f"image and label must be [N, C, H, W] of the same N, H, W; got {tuple(image.shape)} and "
                f"{tuple(label.shape)}."
            )
        if image.shape[1] != self.image_channels or label.shape[1] != self.label_channels:
            raise ValueError(
                f"expected {self.image_channels} image and {self.label_channels} label channels, got {image.shape[1]} "
                f"and {label.shape[1]}."
            )
        x = torch.cat([image, label.to(image.dtype)], dim=1)
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs
