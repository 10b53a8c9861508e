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
"""StyleGAN2's mapping network: Z -> W, with the running mean of W that truncation pulls towards."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai_semgan.networks.equalized import EqualizedLinear

__all__ = ["MappingNetwork"]


class MappingNetwork(nn.Module):
    """Pixel norm followed by ``num_layers`` equalized-lr fully connected layers with leaky ReLU.

    Args:
        z_dim: width of the input latent Z.
        w_dim: width of the intermediate latent W.
        num_layers: depth (8 in StyleGAN2).
        lr_multiplier: learning-rate multiplier of every layer (0.01 in StyleGAN2).
        w_avg_beta: decay of the running mean of W tracked in training mode (used by truncation).
    """

    def __init__(
        self, z_dim: int = 512, w_dim: int = 512, num_layers: int = 8, lr_multiplier: float = 0.01, w_avg_beta=0.995
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        widths = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(widths[i], widths[i + 1], lr_multiplier=lr_multiplier, activation="lrelu")
            for i in range(num_layers)
        )
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``[N, z_dim]`` to ``[N, w_dim]``; in training mode also update ``w_avg``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {tuple(z.shape)}.")
        # float32 under autocast: W feeds every layer's style and w_avg (truncation, the encoder's anchor), and the
        # network is a few small matrix products that bf16 would not speed up
        with torch.autocast(z.device.type, enabled=False):
            z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
            x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
            for layer in self.layers:
                x = layer(x)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(x.detach().float().mean(dim=0), 1.0 - self.w_avg_beta)
        return x

    @torch.no_grad()
    def estimate_w_avg(self, num_samples: int = 10000, batch_size: int = 1000) -> torch.Tensor:
        """Recompute ``w_avg`` as the mean of W over random Z (for a generator trained without tracking).

        Args:
            num_samples: Z samples to average.
            batch_size: samples per forward pass.

        Returns:
            the new ``w_avg``.
        """
        device = self.w_avg.device
        total = torch.zeros(self.w_dim, device=device)
        was_training = self.training
        self.eval()
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            total += self(torch.randn(n, self.z_dim, device=device)).float().sum(dim=0)
        self.train(was_training)
        self.w_avg.copy_(total / num_samples)
        return self.w_avg
