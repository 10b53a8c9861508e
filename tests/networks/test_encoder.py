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
"""LatentEncoder: W+ shapes, the zero head that returns the mean latent, argument checks, gradients."""

from __future__ import annotations

import pytest
import torch

from monai_semgan.networks import LatentEncoder, SemanticGenerator

GEN = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 256, "channel_multiplier": 1, "channel_max": 32}
ENC = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 32}


def small_pair(resolution: int = 16, **kwargs) -> tuple[SemanticGenerator, LatentEncoder]:
    torch.manual_seed(0)
    g = SemanticGenerator(resolution=resolution, **GEN)
    e = LatentEncoder(resolution=resolution, num_ws=g.num_ws, w_dim=g.w_dim, **{**ENC, **kwargs})
    return g, e


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_output_shape_matches_the_generator(resolution: int) -> None:
    g, e = small_pair(resolution)
    assert e.num_ws == g.num_ws == 2 * (resolution.bit_length() - 1) - 2
    ws = e(torch.rand(3, 1, resolution, resolution) * 2 - 1)
    assert ws.shape == (3, g.num_ws, g.w_dim)
    assert torch.isfinite(ws).all()
    image, label = g.synthesis(ws, noise_mode="const")
    assert image.shape == (3, 1, resolution, resolution) and label.shape == (3, 1, resolution, resolution)


def test_multichannel_input() -> None:
    e = LatentEncoder(resolution=16, num_ws=6, w_dim=8, in_channels=3, **ENC)
    assert e(torch.randn(2, 3, 16, 16)).shape == (2, 6, 8)


def test_untrained_encoder_returns_the_latent_mean() -> None:
    g, e = small_pair(16)
    # before anchoring, the mean is zero and so is every output
    assert torch.equal(e(torch.randn(2, 1, 16, 16)), torch.zeros(2, g.num_ws, g.w_dim))
    mean = g.mean_w(num_samples=256)
    assert mean.abs().sum() > 0
    e.set_latent_mean(mean)
    assert torch.equal(e.latent_mean, mean)
    ws = e(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert torch.equal(ws, mean.expand(4, g.num_ws, -1))
    # the mean is a buffer: it is saved with the weights and restored in a fresh encoder
    assert torch.equal(e.state_dict()["latent_mean"], mean)
    fresh = small_pair(16)[1]
    fresh.load_state_dict(e.state_dict())
    assert torch.equal(fresh(torch.randn(1, 1, 16, 16))[0, 0], mean)


def test_set_latent_mean_copies_rather_than_aliases() -> None:
    _, e = small_pair(8)
    mean = torch.randn(32)
    e.set_latent_mean(mean)
    mean.zero_()
    assert e.latent_mean.abs().sum() > 0


@pytest.mark.parametrize("shape", [(31,), (33,), (1, 32), (2, 32), ()])
def test_set_latent_mean_rejects_wrong_shapes(shape: tuple[int, ...]) -> None:
    _, e = small_pair(8)
    before = e.latent_mean.clone()
    with pytest.raises(ValueError, match=r"\[32\]"):
        e.set_latent_mean(torch.ones(shape))
    assert torch.equal(e.latent_mean, before)


@pytest.mark.parametrize(
    "shape",
    [(2, 2, 16, 16), (2, 1, 32, 32), (2, 1, 16, 8), (1, 16, 16), (16, 16), (1, 1, 1, 16, 16), (2, 3, 16, 16)],
)
def test_wrong_input_shape_raises(shape: tuple[int, ...]) -> None:
    _, e = small_pair(16)
    with pytest.raises(ValueError, match="expected images"):
        e(torch.zeros(shape))


@pytest.mark.parametrize("resolution", [0, 4, 12, 48, 2048, -16])
def test_bad_resolution_raises(resolution: int) -> None:
    with pytest.raises(ValueError, match="resolution"):
        LatentEncoder(resolution=resolution, num_ws=4, w_dim=8, **ENC)


@pytest.mark.parametrize("bad", [{"num_ws": 0}, {"w_dim": 0}, {"in_channels": 0}, {"channel_max": 0}])
def test_non_positive_sizes_raise(bad: dict) -> None:
    with pytest.raises(ValueError, match="positive"):
        LatentEncoder(**{"resolution": 16, "num_ws": 6, "w_dim": 8, **ENC, **bad})


def test_gradients_reach_the_head_and_a_step_lowers_the_loss() -> None:
    _, e = small_pair(16)
    torch.manual_seed(1)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    target = torch.randn(4, e.num_ws, e.w_dim)
    optimizer = torch.optim.Adam(e.parameters(), lr=1e-2)

    def loss_fn() -> torch.Tensor:
        return (e(images) - target).square().mean()

    before = loss_fn()
    optimizer.zero_grad()
    before.backward()
    assert e.head.weight.grad is not None and e.head.bias.grad is not None
    assert e.head.weight.grad.abs().sum() > 0 and e.head.bias.grad.abs().sum() > 0
    # the zero head blocks gradients to the trunk on the first step, not to the head itself
    head_before = e.head.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(e.head.weight, head_before)
    with torch.no_grad():
        after = loss_fn()
    assert after < before.detach() - 1e-3
