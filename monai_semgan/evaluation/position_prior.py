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
"""A segmentation that ignores the image: the position prior, the floor a method must beat to be reading the image.

The prior is the labeled training volumes' mean organ mask on the generator's grid, the same in every axial slice,
thresholded where it fits those volumes best. It goes through the evaluation's own postprocessing (back to the input's
grid, largest component kept, written as ``<case>_seg.nii.gz``), so it is scored exactly like every method::

    preprocessing = volume_preprocessing("mri", 64, label_key="label", label_values=1)
    prior = fit_position_prior(labeled_cases, 1, resolution=64)
    threshold, _ = select_prior_threshold(prior, preprocessing, labeled_cases)
    pred, label = segment_with_prior(prior, preprocessing, test_case, threshold, output_dir)
    dice, hd95 = case_scores(pred, label)
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, Resized

from monai_semgan.data import RESIZE_MODE, LabelValues, LoadVolumed, RemapLabelsd, SquareAxialPadd, orient_ras
from monai_semgan.segmentation import case_scores, segmentation_postprocessing

__all__ = ["PRIOR_THRESHOLDS", "fit_position_prior", "prior_logits", "segment_with_prior", "select_prior_threshold"]

PRIOR_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
"""The organ frequencies :func:`select_prior_threshold` tries by default."""


def fit_position_prior(labeled: Sequence[dict[str, Any]], label_values: LabelValues, resolution: int) -> torch.Tensor:
    """The organ's frequency at each pixel of the generator's grid over every axial slice of the labeled volumes.

    Each label map is brought to that grid by the geometry of :func:`~monai_semgan.data.volume_preprocessing`: RAS,
    the axial plane padded to a square, resized to ``resolution`` with the pipeline's resize (``RESIZE_MODE``), so a
    pixel the organ covers in part counts in part.

    Args:
        labeled: cases with a ``"label"`` file (NIfTI or DICOM series folder); other keys are ignored.
        label_values: which label values are the organ, in any form :func:`~monai_semgan.data.parse_label_values`
            takes (``1``, ``[1, 2]``, ``"btcv"``); every other value is background.
        resolution: the generator's resolution ``R``.

    Returns:
        ``[R, R]`` float tensor in [0, 1].

    Raises:
        ValueError: when ``labeled`` is empty, or on a ``label_values`` specification that is not one organ.
    """
    if not labeled:
        raise ValueError("fit_position_prior needs at least one labeled case.")
    geometry = Compose([
        LoadVolumed("label"), EnsureChannelFirstd("label"), orient_ras("label"),
        RemapLabelsd("label", label_values, others=0, num_classes=2),
        EnsureTyped("label", dtype=torch.float32),
        SquareAxialPadd("label", value=0.0),
        Resized("label", spatial_size=(resolution, resolution, -1), mode=RESIZE_MODE),
    ])  # fmt: skip
    slices = [torch.as_tensor(geometry({"label": item["label"]})["label"])[0].permute(2, 0, 1) for item in labeled]
    return torch.cat(slices).float().mean(0)


def prior_logits(prior: torch.Tensor, threshold: float) -> torch.Tensor:
    """Logits that cross 0 where ``prior`` crosses ``threshold``: the postprocessing's sigmoid > 0.5 then keeps the
    pixels where the organ's frequency exceeds the threshold.

    Args:
        prior: organ frequencies in [0, 1].
        threshold: the frequency that becomes the decision boundary, in (0, 1).

    Returns:
        logits of ``prior``'s shape.

    Raises:
        ValueError: when ``threshold`` is not in (0, 1).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}.")
    p = prior.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p)) - math.log(threshold / (1 - threshold))


def segment_with_prior(
    prior: torch.Tensor,
    preprocessing: Callable[[dict[str, Any]], dict[str, Any]],
    item: dict[str, Any],
    threshold: float,
    output_dir: str | os.PathLike,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior in every axial slice of ``item``'s volume, mapped back to the input's grid by the evaluation's
    postprocessing (largest component kept; the mask is written to ``output_dir`` as ``<case>_seg.nii.gz``).

    Args:
        prior: ``[R, R]`` organ frequencies (see :func:`fit_position_prior`).
        preprocessing: the evaluation's preprocessing with a label key ``"label"``
            (:func:`~monai_semgan.data.volume_preprocessing` with ``label_key="label"``), at resolution ``R``; the
            prior only needs its geometry, but :func:`~monai_semgan.segmentation.segmentation_postprocessing` inverts
            it as a whole.
        item: the case: ``"image"`` and ``"label"`` files.
        threshold: the organ frequency above which a pixel is the organ, in (0, 1).
        output_dir: where the mask is written.

    Returns:
        ``(pred, label)``: the mask and the reference, ``[1, H, W, D]`` on the input's grid, ready for
        :func:`~monai_semgan.segmentation.case_scores`.
    """
    data = preprocessing({"image": item["image"], "label": item["label"]})
    logits = prior_logits(prior, threshold)
    data["pred"] = logits[None, :, :, None].expand(1, *prior.shape, data["image"].shape[-1]).clone()
    out = segmentation_postprocessing(preprocessing, output_dir)(data)
    return torch.as_tensor(out["pred"]).float(), torch.as_tensor(data["label"]).float()


def select_prior_threshold(
    prior: torch.Tensor,
    preprocessing: Callable[[dict[str, Any]], dict[str, Any]],
    labeled: Sequence[dict[str, Any]],
    thresholds: Sequence[float] = PRIOR_THRESHOLDS,
) -> tuple[float, dict[float, float]]:
    """The threshold whose prior fits the labeled volumes best (mean 3-D Dice on them; the first of equal ones).

    Args:
        prior: ``[R, R]`` organ frequencies fitted to ``labeled``.
        preprocessing: as for :func:`segment_with_prior`, for the labeled volumes' modality and label values.
        labeled: the labeled cases (``"image"`` and ``"label"``).
        thresholds: the organ frequencies to try, each in (0, 1).

    Returns:
        ``(threshold, {threshold: mean Dice})``.

    Raises:
        ValueError: when ``labeled`` or ``thresholds`` is empty.
    """
    if not labeled or not thresholds:
        raise ValueError("select_prior_threshold needs labeled cases and thresholds to try.")
    with tempfile.TemporaryDirectory() as scratch:
        fit = {
            float(t): float(np.mean([
                case_scores(*segment_with_prior(prior, preprocessing, item, t, Path(scratch)), hd95=False)[0]
                for item in labeled
            ]))
            for t in thresholds
        }  # fmt: skip
    return max(fit, key=fit.get), fit
