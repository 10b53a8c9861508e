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
"""A latent prior across neighbouring slices: the slices of a volume change slowly, so their latents should too."""

from __future__ import annotations

import math

import torch

__all__ = ["slice_smoothing_matrix", "smooth_across_slices"]


def slice_smoothing_matrix(num_slices: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """Row-stochastic ``[num_slices, num_slices]`` Gaussian weights over slice distance, cut at 3 sigma.

    Each row is renormalized over the slices that exist, so the first and last slices are averaged with their inner
    neighbours only (no padding, no pull towards zero).

    Args:
        num_slices: slices in the stack.
        sigma: standard deviation in slices; 0 gives the identity.
        device: where the matrix lives.

    Returns:
        the weights; row ``i`` holds the contributions of every slice to slice ``i``.

    Raises:
        ValueError: on a negative ``sigma``.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}.")
    if sigma == 0:
        return torch.eye(num_slices, device=device)
    index = torch.arange(num_slices, device=device, dtype=torch.float32)
    distance = index[:, None] - index[None, :]
    weights = torch.exp(-0.5 * (distance / sigma).square())
    weights = weights * (distance.abs() <= math.ceil(3 * sigma))
    return weights / weights.sum(dim=1, keepdim=True)


def smooth_across_slices(ws: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-smooth latents ``[N, ...]`` along the first axis, read as consecutive slices of one volume.

    ``SliceInferer`` hands a network consecutive slices in order, ``sw_batch_size`` at a time, so with a batch as
    large as the volume a batch is the whole volume; a smaller batch is smoothed within itself.

    Args:
        ws: latents of consecutive slices, e.g. W+ ``[N, num_ws, w_dim]``.
        sigma: standard deviation in slices; 0 returns ``ws`` unchanged.

    Returns:
        the smoothed latents, same shape and dtype.

    Raises:
        ValueError: on a negative ``sigma``.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}.")
    if sigma == 0 or ws.shape[0] < 2:
        return ws
    weights = slice_smoothing_matrix(ws.shape[0], sigma, ws.device).to(ws.dtype)
    return (weights @ ws.flatten(1)).reshape(ws.shape)
