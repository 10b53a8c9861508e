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
"""SemanticGenerator: shapes, latent spaces, truncation, mixing, noise modes, fused modulation, gradients."""

from __future__ import annotations

import pytest
import torch

from monai_semgan.losses import PathLengthPenalty
from monai_semgan.networks import ModulatedConv2d, SemanticGenerator

SMALL = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 512, "channel_multiplier": 1, "channel_max": 32}


def small_generator(resolution: int = 32, **kwargs) -> SemanticGenerator:
    torch.manual_seed(0)
    return SemanticGenerator(resolution=resolution, **{**SMALL, **kwargs})


@pytest.mark.parametrize("resolution, image_channels, label_channels", [(32, 1, 1), (64, 1, 3), (32, 3, 2)])
def test_output_shapes_and_latent_counts(resolution: int, image_channels: int, label_channels: int) -> None:
    g = small_generator(resolution, image_channels=image_channels, label_channels=label_channels)
    log2 = resolution.bit_length() - 1
    assert g.num_ws == 2 * log2 - 2
    assert g.num_noise == 2 * log2 - 3 == len(g.noise_resolutions)
    assert g.noise_resolutions[-1] == resolution
    image, label, ws = g(torch.randn(2, 32), return_ws=True)
    assert image.shape == (2, image_channels, resolution, resolution)
    assert label.shape == (2, label_channels, resolution, resolution)
    assert ws.shape == (2, g.num_ws, 32)
    assert torch.isfinite(image).all() and torch.isfinite(label).all()


def test_paper_configuration_channels() -> None:
    g = SemanticGenerator(resolution=256, mapping_layers=8)
    assert [g.channels(2**i) for i in range(2, 9)] == [512, 512, 512, 512, 512, 256, 128]
    assert g.num_ws == 14
    assert g.blocks[-1].to_label.conv.weight.shape == (1, 128, 1, 1)
    assert len(g.mapping.layers) == 8
    assert g.mapping.layers[0].weight_gain == pytest.approx(0.01 / 512**0.5)


def test_z_w_and_wplus_inputs_agree() -> None:
    g = small_generator().eval()
    z = torch.randn(3, 32)
    w = g.mapping(z)
    from_z = g(z, noise_mode="const")
    from_w = g(w, input_space="w", noise_mode="const")
    from_wplus = g(w[:, None].repeat(1, g.num_ws, 1), input_space="w+", noise_mode="const")
    for a, b in zip(from_z, from_w):
        torch.testing.assert_close(a, b)
    for a, b in zip(from_w, from_wplus):
        torch.testing.assert_close(a, b)


def test_truncation_to_zero_gives_the_mean_image() -> None:
    g = small_generator().eval()
    g.mapping.w_avg.normal_()
    a = g(torch.randn(2, 32), truncation_psi=0.0, noise_mode="const")[0]
    torch.testing.assert_close(a[0], a[1])
    b = g(torch.randn(2, 32), truncation_psi=1.0, noise_mode="const")[0]
    assert not torch.allclose(b[0], b[1])


def test_style_mixing_switches_latent_at_a_cutoff() -> None:
    g = small_generator()
    ws = g.latent_to_ws(torch.randn(8, 32), mixing_prob=1.0)
    # every sample switches once: its first entry differs from its last, and entries change exactly once
    changes = (ws[:, 1:] != ws[:, :-1]).any(dim=2).sum(dim=1)
    assert changes.tolist() == [1] * 8
    assert (g.latent_to_ws(torch.randn(8, 32), mixing_prob=0.0).diff(dim=1) == 0).all()


def test_noise_modes() -> None:
    g = small_generator().eval()
    for layer in g._noisy_layers():
        layer.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 32)
    const_a, const_b = g(z, noise_mode="const")[0], g(z, noise_mode="const")[0]
    torch.testing.assert_close(const_a, const_b)
    none_a = g(z, noise_mode="none")[0]
    assert not torch.allclose(none_a, const_a)
    rand_a, rand_b = g(z, noise_mode="random")[0], g(z, noise_mode="random")[0]
    assert not torch.allclose(rand_a, rand_b)
    explicit = g(z, noise=g.const_noise())[0]
    torch.testing.assert_close(explicit, const_a)
    maps = g.make_noise(2)
    assert [m.shape[-1] for m in maps] == g.noise_resolutions
    torch.testing.assert_close(g(z, noise=maps)[0], g(z, noise=maps)[0])


def test_fused_and_non_fused_modulation_agree() -> None:
    g = small_generator().eval()
    z = torch.randn(3, 32)
    reference = g(z, noise_mode="const")
    for module in g.modules():
        if isinstance(module, ModulatedConv2d):
            module.fused = True
    fused = g(z, noise_mode="const")
    for a, b in zip(reference, fused):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    g = small_generator()
    image, label = g(torch.randn(2, 32), mixing_prob=0.5)
    (image.square().mean() + label.square().mean()).backward()
    missing = [name for name, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_path_length_double_backward_reaches_synthesis_weights() -> None:
    g = small_generator()
    pl = PathLengthPenalty()
    image, _, ws = g(torch.randn(2, 32), return_ws=True)
    penalty, length = pl(image, ws)
    penalty.backward()
    assert length > 0 and pl.mean_length > 0
    grad = g.blocks[0].conv0.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("resolution", [4, 48, 2048])
def test_bad_resolution(resolution: int) -> None:
    with pytest.raises(ValueError, match="resolution"):
        SemanticGenerator(resolution=resolution)


def test_bad_latents_and_noise() -> None:
    g = small_generator()
    with pytest.raises(ValueError, match="z must have shape"):
        g(torch.randn(2, 31))
    with pytest.raises(ValueError, match="W latent"):
        g(torch.randn(2, 31), input_space="w")
    with pytest.raises(ValueError, match="W\\+ latent"):
        g(torch.randn(2, g.num_ws - 1, 32), input_space="w+")
    with pytest.raises(ValueError, match="input_space"):
        g(torch.randn(2, 32), input_space="s")
    with pytest.raises(ValueError, match="noise_mode"):
        g(torch.randn(2, 32), noise_mode="loud")
    with pytest.raises(ValueError, match="noise must hold"):
        g(torch.randn(2, 32), noise=g.make_noise(2)[:-1])
