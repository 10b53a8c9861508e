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
"""Per-slice organ area profiles of NIfTI masks in any orientation, and the share of a prediction outside the organ's
slices."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_semgan.evaluation import (
    area_profile,
    axial_axis,
    axial_profiles,
    in_plane_voxel_cm2,
    load_masks,
    outside_share,
    plot_area_profiles,
    share_outside_organ_slices,
    voxel_profile,
)

LAS = np.diag([-1.5, 1.5, 5.0, 1.0])  # as CHAOS: the third axis is axial, from the feet to the head


def test_share_of_the_prediction_outside_the_organ_slices(tmp_path: Path) -> None:
    label = np.zeros((8, 8, 5), np.uint8)
    label[2:5, 2:5, 2:5] = 5
    pred = np.zeros((8, 8, 5), np.uint8)
    pred[2:5, 2:5, :] = 1  # the same 9 voxels in every slice; slices 0 and 1 hold no organ
    nib.save(nib.Nifti1Image(label, LAS), tmp_path / "label.nii.gz")
    nib.save(nib.Nifti1Image(pred, LAS), tmp_path / "seg.nii.gz")
    masks = load_masks(tmp_path / "seg.nii.gz", tmp_path / "label.nii.gz", [5])
    assert share_outside_organ_slices(*masks[1:]) == pytest.approx(2 / 5)
    predicted, reference = axial_profiles(*masks[1:])
    assert predicted.tolist() == [9] * 5 and reference.tolist() == [0, 0, 9, 9, 9]
    assert outside_share(predicted, reference) == pytest.approx(2 / 5)
    assert in_plane_voxel_cm2(masks[2]) == pytest.approx(1.5 * 1.5 / 100)
    assert area_profile(masks[3], masks[2]) == pytest.approx([0, 0, 0.2025, 0.2025, 0.2025])
    # an axis that runs from the head to the feet is read the other way round
    nib.save(nib.Nifti1Image(label, np.diag([-1.5, 1.5, -5.0, 1.0])), tmp_path / "label_lai.nii.gz")
    flipped = load_masks(tmp_path / "seg.nii.gz", tmp_path / "label_lai.nii.gz", [5])
    assert axial_profiles(*flipped[1:])[1].tolist() == [9, 9, 9, 0, 0]
    # the axial axis first: the affine says which array axis is axial
    axial_first = np.array([[0, -1.5, 0, 0], [0, 0, 1.5, 0], [5.0, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(label.transpose(2, 0, 1), axial_first), tmp_path / "l.nii.gz")
    nib.save(nib.Nifti1Image(pred.transpose(2, 0, 1), axial_first), tmp_path / "s.nii.gz")
    masks = load_masks(tmp_path / "s.nii.gz", tmp_path / "l.nii.gz", [5])
    assert axial_axis(masks[2]) == 0
    assert share_outside_organ_slices(*masks[1:]) == pytest.approx(2 / 5)
    assert in_plane_voxel_cm2(masks[2]) == pytest.approx(1.5 * 1.5 / 100)


def test_an_empty_prediction_has_nothing_outside() -> None:
    assert outside_share(np.zeros(4), np.array([0, 1, 1, 0])) == 0.0


def test_profiles_of_a_chaos_label_and_their_plot(chaos_dir: Path, tmp_path: Path) -> None:
    image = nib.load(chaos_dir / "label_1.nii.gz")
    liver = np.asarray(image.dataobj).round() == 1
    voxels = voxel_profile(liver, image)
    assert voxels.shape == (image.shape[2],) and voxels.sum() == liver.sum()
    # the liver is one organ: its slices are contiguous, with empty slices below and above it in this scan
    inside = np.flatnonzero(voxels)
    assert inside.size and np.all(np.diff(inside) == 1) and voxels[0] == 0
    areas = area_profile(liver, image)
    assert areas.max() == pytest.approx(voxels.max() * 1.25 * 1.25 / 100, rel=1e-3)  # 1.25 mm pixels
    pytest.importorskip("matplotlib")
    curves = {"chaos": {"label_1": {"reference": areas, "unet": areas * 0.5, "other": areas * 0.25}}}
    path = plot_area_profiles(curves, tmp_path / "profiles.png", title="CHAOS label 1")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="no area profile"):
        plot_area_profiles({}, tmp_path / "empty.png")
