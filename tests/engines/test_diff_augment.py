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
from __future__ import annotations

import pytest
import torch

from monai_semgan.engines import DifferentiableAugment


def _pair(b: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    image = torch.rand(b, 1, size, size) * 1.8 - 0.8  # never exactly -1, so fills are recognisable
    mask = torch.where(image > 0.2, 1.0, -1.0)
    return image, mask


def test_empty_policy_is_identity():
    image, mask = _pair()
    aug = DifferentiableAugment("")
    assert not aug
    assert aug(image) is image
    out = aug(image, mask)
    assert out[0] is image and out[1] is mask


def test_unknown_operation_is_named():
    with pytest.raises(ValueError, match="colour"):
        DifferentiableAugment("translation,colour")
    with pytest.raises(ValueError, match="gamma_max must be at least 1"):
        DifferentiableAugment("gamma", gamma_max=0.5)


def test_photometric_constructor_refuses_geometry_and_keeps_a_built_augmentation():
    built = DifferentiableAugment("gamma", gamma_max=1.5)
    assert DifferentiableAugment.photometric(built) is built
    assert DifferentiableAugment.photometric("intensity,gamma").ops == ["intensity", "gamma"]
    assert not DifferentiableAugment.photometric("")
    for policy in ("gamma,translation", DifferentiableAugment("cutout")):
        with pytest.raises(ValueError, match="policy must be photometric"):
            DifferentiableAugment.photometric(policy)
    with pytest.raises(ValueError, match="colour"):
        DifferentiableAugment.photometric("colour")


@pytest.mark.parametrize("policy", ["translation", "cutout", "translation,cutout"])
def test_geometry_is_shared_by_image_and_mask(policy):
    image, mask = _pair()
    torch.manual_seed(1)
    out_image, out_mask = DifferentiableAugment(policy)(image, mask)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    filled = out_image == -1.0
    assert filled.any(), "some pixels are shifted in or cut out"
    # every kept pixel of the mask still matches its image pixel; filled pixels are background in both
    assert torch.equal(out_mask[filled], torch.full_like(out_mask[filled], -1.0))
    assert torch.equal(out_mask[~filled], torch.where(out_image[~filled] > 0.2, 1.0, -1.0))
    # kept pixels are input values, not interpolations
    assert torch.isin(out_image[~filled], image).all()


def test_translation_is_a_shift():
    image = torch.arange(64.0).reshape(1, 1, 8, 8) / 64
    aug = DifferentiableAugment("translation", translation_ratio=0.25)
    for seed in range(10):
        torch.manual_seed(seed)
        out = aug(image)[0, 0]
        kept = torch.nonzero(out != -1.0)
        (r0, c0) = kept[0].tolist()
        src = (out[r0, c0] * 64).round().long().item()
        dy, dx = r0 - src // 8, c0 - src % 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        expected = torch.full((8, 8), -1.0)
        ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        sy, sx = ys - dy, xs - dx
        valid = (sy >= 0) & (sy < 8) & (sx >= 0) & (sx < 8)
        expected[valid] = image[0, 0][sy[valid], sx[valid]]
        assert torch.equal(out, expected)


def test_cutout_size():
    image = torch.zeros(200, 1, 16, 16)
    torch.manual_seed(0)
    out = DifferentiableAugment("cutout", cutout_ratio=0.5)(image)
    cut = (out == -1.0).float().mean(dim=(1, 2, 3))
    assert cut.max() == pytest.approx(0.25)  # an 8 x 8 square when it lies inside
    assert (cut > 0).all() and cut.mean() > 0.15


def test_intensity_changes_only_the_image_and_keeps_gradients():
    image, mask = _pair()
    image.requires_grad_(True)
    torch.manual_seed(0)
    out_image, out_mask = DifferentiableAugment("intensity,translation,cutout")(image, mask)
    assert out_mask.unique().tolist() == [-1.0, 1.0]
    out_image.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_gradients_reach_exactly_the_kept_pixels():
    image, _ = _pair()
    image.requires_grad_(True)
    torch.manual_seed(3)
    out = DifferentiableAugment("translation,cutout")(image)
    out.sum().backward()
    assert image.grad.gt(0).sum() == (out.detach() != -1.0).sum()


def test_gamma_is_monotone_keeps_the_range_and_air_and_passes_gradients():
    image, mask = _pair()
    image = torch.cat([image, torch.full((6, 1, 16, 1), -1.0)], dim=3).requires_grad_(True)  # a column of air
    torch.manual_seed(0)
    aug = DifferentiableAugment("gamma", gamma_max=2.0)
    out = aug(image)
    assert not aug.geometric and out.shape == image.shape
    assert out.min() >= -1.0 and out.max() <= 1.0 and not torch.allclose(out, image)
    assert torch.allclose(out[..., -1], torch.full_like(out[..., -1], -1.0), atol=1e-3)
    order = image.detach().flatten(1).argsort(dim=1)
    assert (out.detach().flatten(1).gather(1, order).diff(dim=1) >= -1e-6).all()
    # exponent within [1/2, 2] for every slice: compare one interior pixel with the two extremes
    unit, unit_out = (image.detach()[:, 0, 0, 0] + 1) / 2, (out.detach()[:, 0, 0, 0] + 1) / 2
    assert ((unit_out <= unit.pow(0.5) + 1e-5) & (unit_out >= unit.pow(2.0) - 1e-5)).all()
    out.sum().backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


@pytest.mark.parametrize(("policy", "geometric"), [("intensity,gamma", False), ("gamma,cutout", True), ("", False)])
def test_geometric_names_the_operations_that_move_pixels(policy, geometric):
    assert DifferentiableAugment(policy).geometric is geometric
