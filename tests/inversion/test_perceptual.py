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
"""Perceptual distances: SSIM, LPIPS from a local VGG16 or LPIPS state dict, and make_perceptual."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from monai_semgan.inversion import PERCEPTUAL_KINDS, LPIPSDistance, SSIMDistance, make_perceptual


def images(n: int = 3, channels: int = 1, size: int = 32, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(n, channels, size, size) * 2 - 1


def smooth_images(n: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------- SSIM


def test_ssim_is_zero_for_identical_images() -> None:
    x = images(4)
    d = SSIMDistance()(x, x.clone())
    assert d.shape == (4,)
    torch.testing.assert_close(d, torch.zeros(4), atol=1e-5, rtol=0)


def test_ssim_is_positive_for_different_images() -> None:
    x = smooth_images(3)
    ssim = SSIMDistance()
    noisy = x + 0.1 * torch.randn_like(x)
    small, large = ssim(x, noisy), ssim(x, -x)
    assert small.shape == large.shape == (3,)
    assert (small > 0.01).all()
    # an inverted image is further away than a slightly noisy one
    assert (large > small).all()
    # a distance, not a direction-dependent loss
    torch.testing.assert_close(ssim(noisy, x), small)


def test_ssim_is_per_sample() -> None:
    x, y = images(3, seed=0), images(3, seed=1)
    ssim = SSIMDistance()
    batched = ssim(x, y)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], ssim(x[i : i + 1], y[i : i + 1]))
    # changing one pair changes only its own distance
    y2 = y.clone()
    y2[1] = x[1]
    changed = ssim(x, y2)
    assert changed[1].abs() < 1e-5 < batched[1]
    torch.testing.assert_close(changed[[0, 2]], batched[[0, 2]])


def test_ssim_multichannel_and_dtype() -> None:
    x, y = images(2, channels=3, seed=0), images(2, channels=3, seed=1)
    ssim = SSIMDistance()
    d = ssim(x, y)
    assert d.shape == (2,) and d.dtype == torch.float32
    # the mean over channels
    per_channel = torch.stack([ssim(x[:, c : c + 1], y[:, c : c + 1]) for c in range(3)], dim=1)
    torch.testing.assert_close(d, per_channel.mean(dim=1))
    torch.testing.assert_close(ssim(x.double(), y.double()), d)


def test_ssim_has_gradients() -> None:
    x = images(2).requires_grad_(True)
    SSIMDistance()(x, images(2, seed=1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- make_perceptual


def test_make_perceptual_kinds() -> None:
    assert PERCEPTUAL_KINDS == ("ssim", "lpips", "none")
    assert make_perceptual("none") is None
    assert make_perceptual("none", "") is None
    assert isinstance(make_perceptual("ssim"), SSIMDistance)
    assert isinstance(make_perceptual(), SSIMDistance)


@pytest.mark.parametrize("kind", ["vgg", "LPIPS", "", "mse"])
def test_make_perceptual_unknown_kind(kind: str) -> None:
    with pytest.raises(ValueError, match="perceptual kind"):
        make_perceptual(kind)


@pytest.mark.parametrize("weights", [None, ""])
def test_make_perceptual_lpips_needs_weights(weights: str | None) -> None:
    with pytest.raises(ValueError, match="lpips_weights"):
        make_perceptual("lpips", weights)


def test_make_perceptual_weights_select_lpips(tmp_path: Path) -> None:
    # a weights path selects LPIPS whatever the kind: a missing file then fails as LPIPS's does
    path = tmp_path / "vgg16.pth"
    for kind in PERCEPTUAL_KINDS:
        with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
            make_perceptual(kind, path)


# ---------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """torchvision's VGG16 state dict (random weights) written as a file, and its ``features`` tensors in memory."""
    pytest.importorskip("lpips")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return path, {k: v for k, v in state.items() if k.startswith("features.")}


@pytest.fixture(scope="module")
def vgg_file(vgg_weights: tuple[Path, dict[str, torch.Tensor]]) -> Path:
    return vgg_weights[0]


@pytest.fixture(scope="module")
def lpips_distance(vgg_file: Path) -> LPIPSDistance:
    """One LPIPS built from the torchvision VGG16 file (building VGG16 takes a second or two)."""
    distance = make_perceptual("lpips", vgg_file)
    assert isinstance(distance, LPIPSDistance)
    return distance


def test_lpips_loads_the_vgg_features(
    vgg_weights: tuple[Path, dict[str, torch.Tensor]], lpips_distance: LPIPSDistance
) -> None:
    vgg = vgg_weights[1]
    net = lpips_distance.lpips.net
    slices = [net.slice1, net.slice2, net.slice3, net.slice4, net.slice5]
    starts = (0, 4, 9, 16, 23, 30)
    loaded = 0
    for k, module in enumerate(slices):
        for index in range(starts[k], starts[k + 1]):
            layer = getattr(module, str(index))
            if isinstance(layer, torch.nn.Conv2d):
                assert torch.equal(layer.weight, vgg[f"features.{index}.weight"]), index
                assert torch.equal(layer.bias, vgg[f"features.{index}.bias"]), index
                loaded += 1
    assert loaded == 13  # VGG16's convolutions
    # frozen and in eval mode
    assert not any(p.requires_grad for p in lpips_distance.parameters())
    assert not lpips_distance.lpips.training


def test_lpips_zero_for_identical_and_positive_otherwise(lpips_distance: LPIPSDistance) -> None:
    x, y = images(3, seed=0), images(3, seed=1)
    same = lpips_distance(x, x.clone())
    assert same.shape == (3,)
    assert torch.equal(same, torch.zeros(3))
    different = lpips_distance(x, y)
    assert different.shape == (3,)
    assert (different > 1e-4).all()
    torch.testing.assert_close(lpips_distance(y, x), different)
    # per sample: one pair alone gives its batched value
    torch.testing.assert_close(lpips_distance(x[1:2], y[1:2]), different[1:2], atol=1e-6, rtol=1e-5)
    # one channel is repeated to the three VGG expects
    torch.testing.assert_close(
        lpips_distance(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)), different, atol=1e-6, rtol=1e-5
    )


def test_lpips_from_a_whole_lpips_state_dict(tmp_path: Path, lpips_distance: LPIPSDistance) -> None:
    source = lpips_distance.lpips
    original = {k: v.clone() for k, v in source.state_dict().items()}
    try:
        with torch.no_grad():
            source.lin0.model[1].weight.mul_(3.0)  # so the file's calibration differs from the lpips package's
        state = {k: v.clone() for k, v in source.state_dict().items()}
    finally:
        source.load_state_dict(original)
    assert any(k.startswith("net.slice5.") for k in state) and "lin4.model.1.weight" in state
    path = tmp_path / "lpips_vgg.pth"
    torch.save(state, path)
    loaded = LPIPSDistance(path)
    for k, v in loaded.lpips.state_dict().items():
        assert torch.equal(v, state[k]), k
    x, y = images(2, seed=3), images(2, seed=4)
    assert torch.equal(loaded(x, x), torch.zeros(2))
    assert (loaded(x, y) > lpips_distance(x, y)).all()


def test_lpips_from_a_wrapped_state_dict(
    tmp_path: Path, vgg_weights: tuple[Path, dict[str, torch.Tensor]], lpips_distance: LPIPSDistance
) -> None:
    # a checkpoint holding the VGG16 features (no classifier) under "state_dict" reads the same as the whole file
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": vgg_weights[1]}, path)
    x, y = images(2, seed=3), images(2, seed=4)
    torch.testing.assert_close(LPIPSDistance(path)(x, y), lpips_distance(x, y))


def test_lpips_file_without_vgg_weights(tmp_path: Path) -> None:
    pytest.importorskip("lpips")
    path = tmp_path / "foo.pth"
    torch.save({"foo": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        LPIPSDistance(path)
    assert "VGG16" in str(info.value)


def test_lpips_unreadable_file(tmp_path: Path) -> None:
    pytest.importorskip("lpips")
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"not a torch file" * 64)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        LPIPSDistance(path)


def test_lpips_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        LPIPSDistance(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        LPIPSDistance(tmp_path)  # a directory is not a weights file
