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
"""The latent prior across neighbouring slices: the Gaussian weights, what smoothing keeps and removes, and the slice
order ``SliceInferer`` hands a network (which the prior relies on)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.inferers import SliceInferer

from monai_semgan.inversion import slice_smoothing_matrix, smooth_across_slices


def test_sigma_zero_is_the_identity() -> None:
    assert torch.equal(slice_smoothing_matrix(5, 0.0), torch.eye(5))
    ws = torch.randn(5, 3, 4)
    assert smooth_across_slices(ws, 0.0) is ws


def test_weights_are_gaussian_rows_cut_at_three_sigma() -> None:
    w = slice_smoothing_matrix(20, 1.5)
    assert torch.allclose(w.sum(dim=1), torch.ones(20))
    # an interior row: the normalized Gaussian of the distance, nothing beyond ceil(3 sigma) = 5 slices
    d = torch.arange(-5, 6, dtype=torch.float32)
    g = torch.exp(-0.5 * (d / 1.5) ** 2)
    assert torch.allclose(w[10, 5:16], g / g.sum())
    assert w[10, :5].abs().sum() == 0 and w[10, 16:].abs().sum() == 0
    # an edge row is renormalized over the slices that exist
    assert torch.allclose(w[0, :6], g[5:] / g[5:].sum())


def test_constants_everywhere_and_ramps_inside_are_kept() -> None:
    n, sigma = 30, 2.0
    constant = torch.full((n, 2, 3), 0.7)
    assert torch.allclose(smooth_across_slices(constant, sigma), constant)
    ramp = torch.arange(n, dtype=torch.float32)[:, None, None] * torch.tensor([1.0, -2.0])[None, :, None]
    smoothed = smooth_across_slices(ramp.expand(n, 2, 3).contiguous(), sigma)
    inner = slice(6, n - 6)  # a symmetric kernel keeps a linear trend where it is not cut by an edge
    assert torch.allclose(smoothed[inner], ramp.expand(n, 2, 3)[inner], atol=1e-5)


def test_slice_to_slice_noise_is_damped_as_expected() -> None:
    torch.manual_seed(0)
    sigma = 2.0
    ws = torch.randn(4000, 8)
    smoothed = smooth_across_slices(ws, sigma)
    # white noise variance falls by sum(w^2), about 1 / (2 sqrt(pi) sigma) for a Gaussian kernel
    expected = 1 / (2 * math.sqrt(math.pi) * sigma)
    assert smoothed[50:-50].var().item() == pytest.approx(expected, rel=0.1)
    assert smoothed.shape == ws.shape and smoothed.dtype == ws.dtype


def test_one_slice_and_negative_sigma() -> None:
    ws = torch.randn(1, 3)
    assert torch.equal(smooth_across_slices(ws, 3.0), ws)
    with pytest.raises(ValueError, match="sigma"):
        smooth_across_slices(ws, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        slice_smoothing_matrix(3, -0.5)


@pytest.mark.parametrize("sw_batch_size", [64, 4])
def test_slice_inferer_hands_consecutive_slices_in_order(sw_batch_size: int) -> None:
    # the prior reads a batch as consecutive slices of one volume: check that MONAI's SliceInferer does so
    depth = 11
    volume = torch.arange(depth, dtype=torch.float32).reshape(1, 1, 1, 1, depth).expand(1, 1, 8, 8, depth).clone()
    batches: list[list[float]] = []

    def network(x: torch.Tensor) -> torch.Tensor:
        batches.append([float(v) for v in x.mean(dim=(1, 2, 3))])
        return x

    out = SliceInferer(roi_size=(8, 8), spatial_dim=2, sw_batch_size=sw_batch_size)(volume, network)
    assert torch.equal(out, volume)
    assert [v for b in batches for v in b] == list(range(depth))
    assert [len(b) for b in batches] == [min(sw_batch_size, depth - i) for i in range(0, depth, sw_batch_size)]
