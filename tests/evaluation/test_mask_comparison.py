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
"""Volume ratio and left-right offset of a predicted mask, read from NIfTI files."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_semgan.evaluation import load_masks, volume_ratio_and_offset

LAS = np.diag([-1.5, 1.5, 5.0, 1.0])  # as CHAOS: the first array axis runs to the patient's left


def test_a_prediction_twice_as_large_and_shifted_to_the_left(tmp_path: Path) -> None:
    label = np.zeros((10, 8, 4), np.uint8)
    label[2:4, 2:4, 1:3] = 5
    label[8, 7, 0] = 2  # another structure: not the organ
    pred = np.zeros((10, 8, 4), np.uint8)
    pred[4:8, 2:4, 1:3] = 1  # 4 columns instead of 2, centre 3 voxels further along the array's first axis
    nib.save(nib.Nifti1Image(label, LAS), tmp_path / "label.nii.gz")
    nib.save(nib.Nifti1Image(pred, LAS), tmp_path / "seg.nii.gz")
    seg_image, pred_mask, ref_image, ref = load_masks(tmp_path / "seg.nii.gz", tmp_path / "label.nii.gz", [5])
    assert pred_mask.dtype == bool and ref.sum() == 8 and pred_mask.sum() == 16
    ratio, offset = volume_ratio_and_offset(seg_image, pred_mask, ref_image, ref)
    assert ratio == pytest.approx(2.0)
    assert offset == pytest.approx(-4.5)  # 3 voxels of 1.5 mm to the patient's left


def test_an_empty_prediction_has_no_offset(tmp_path: Path) -> None:
    label = np.zeros((6, 6, 3), np.uint8)
    label[1:3, 1:3, 1] = 1
    nib.save(nib.Nifti1Image(label, LAS), tmp_path / "label.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros_like(label), LAS), tmp_path / "seg.nii.gz")
    ratio, offset = volume_ratio_and_offset(*load_masks(tmp_path / "seg.nii.gz", tmp_path / "label.nii.gz", [1]))
    assert ratio == 0.0 and math.isnan(offset)


def test_a_chaos_label_against_itself(chaos_dir: Path) -> None:
    label = chaos_dir / "label_1.nii.gz"
    seg_image, pred, ref_image, ref = load_masks(label, label, [1])
    assert ref.any() and np.array_equal(pred, np.asarray(ref_image.dataobj) > 0)  # every organ is "predicted"
    ratio, offset = volume_ratio_and_offset(seg_image, ref, ref_image, ref)
    assert ratio == 1.0 and offset == 0.0
    ratio, _ = volume_ratio_and_offset(seg_image, pred, ref_image, ref)
    assert ratio > 1.0  # kidneys and spleen on top of the liver
