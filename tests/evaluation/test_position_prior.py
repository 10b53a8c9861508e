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
"""The position prior: fitted to label files, segmented through the evaluation's own pre- and postprocessing, its
threshold chosen on the labeled volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_semgan.data import volume_preprocessing
from monai_semgan.evaluation import fit_position_prior, prior_logits, segment_with_prior, select_prior_threshold
from monai_semgan.segmentation import case_scores

LAS = np.diag([-1.5, 1.5, 5.0, 1.0])  # as CHAOS: the first array axis runs to the patient's left


def write_case(folder: Path) -> dict[str, str]:
    """An 8 x 8 x 4 CT volume whose organ (label 5) fills 3 x 3 pixels in the two lowest slices."""
    label = np.zeros((8, 8, 4), np.uint8)
    label[1:4, 2:5, :2] = 5
    label[6, 6, :] = 2  # another structure: not the organ
    image = np.random.default_rng(0).normal(0.0, 100.0, label.shape).astype(np.int16)
    nib.save(nib.Nifti1Image(label, LAS), folder / "label.nii.gz")
    nib.save(nib.Nifti1Image(image, LAS), folder / "image.nii.gz")
    return {"image": str(folder / "image.nii.gz"), "label": str(folder / "label.nii.gz")}


def test_position_prior_is_the_organ_frequency_over_the_labeled_slices(tmp_path: Path) -> None:
    prior = fit_position_prior([write_case(tmp_path)], [5], resolution=8)
    assert prior.shape == (8, 8)
    assert float(prior.max()) == pytest.approx(0.5) and float(prior.sum()) == pytest.approx(0.5 * 9)
    # RAS: the first array axis is reversed (it now runs to the patient's right): the organ moves from 1-3 to 4-6
    assert np.argwhere(prior.numpy() > 0.25)[:, 0].tolist() == [4] * 3 + [5] * 3 + [6] * 3
    with pytest.raises(ValueError, match="at least one"):
        fit_position_prior([], [5], resolution=8)


def test_logits_cross_zero_at_the_threshold() -> None:
    prior = torch.tensor([0.0, 0.25, 0.3, 0.35, 1.0])
    logits = prior_logits(prior, 0.3)
    assert logits[2] == pytest.approx(0.0, abs=1e-6)
    assert [bool(logits[i] > 0) for i in (0, 1, 3, 4)] == [False, False, True, True]
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        prior_logits(prior, 1.0)


def test_the_prior_in_every_slice_on_the_inputs_grid(tmp_path: Path) -> None:
    item = write_case(tmp_path)
    prior = fit_position_prior([item], [5], resolution=8)
    preprocessing = volume_preprocessing("ct", 8, label_key="label", label_values=5)
    pred, label = segment_with_prior(prior, preprocessing, item, 0.3, tmp_path / "out")
    assert pred.shape == label.shape == (1, 8, 8, 4)
    # the organ's footprint in all 4 slices, back in the file's own (LAS) orientation
    footprint = np.zeros((8, 8), bool)
    footprint[1:4, 2:5] = True
    assert all(np.array_equal(pred[0, :, :, z].numpy() > 0, footprint) for z in range(4))
    assert case_scores(pred, label, hd95=False)[0] == pytest.approx(2 * 18 / (36 + 18))
    written = nib.load(tmp_path / "out" / "image_seg.nii.gz")  # named after the image, as the evaluation does
    assert written.shape == (8, 8, 4) and np.allclose(written.affine, LAS)
    assert np.array_equal(np.asarray(written.dataobj) > 0, pred[0].numpy() > 0)


def test_the_threshold_that_fits_the_labeled_volumes_best(tmp_path: Path) -> None:
    item = write_case(tmp_path)
    prior = fit_position_prior([item], [5], resolution=8)
    preprocessing = volume_preprocessing("ct", 8, label_key="label", label_values=5)
    # above the prior's maximum (0.5) nothing is left: Dice 0
    threshold, fit = select_prior_threshold(prior, preprocessing, [item], thresholds=(0.6, 0.3))
    assert threshold == 0.3 and fit[0.6] == 0.0 and fit[0.3] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labeled cases"):
        select_prior_threshold(prior, preprocessing, [], thresholds=(0.3,))


def test_a_prior_of_chaos_livers_lies_on_the_patients_right(chaos_dir: Path) -> None:
    labeled = [{"label": str(chaos_dir / f"label_{i}.nii.gz")} for i in (1, 2)]
    prior = fit_position_prior(labeled, [1], resolution=32)
    assert prior.shape == (32, 32) and 0.0 <= float(prior.min()) and float(prior.max()) <= 1.0
    assert float(prior.max()) > 0.5  # the liver's core lies where it is in most slices of both volumes
    # RAS: the first axis runs to the patient's right, where the liver is
    column = (prior.sum(1) * torch.arange(32)).sum() / prior.sum()
    assert float(column) > 16
