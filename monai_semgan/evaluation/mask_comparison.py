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
"""A predicted mask against the reference, beyond Dice: how much it over- or under-segments, and on which side it lies.

Both masks are read from NIfTI files on the input's grid, as the evaluation writes them (``<case>_seg.nii.gz``) and as
the data set holds the labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

__all__ = ["load_masks", "volume_ratio_and_offset"]


def load_masks(
    seg_path: str | os.PathLike, label_path: str | os.PathLike, label_values: Sequence[int]
) -> tuple[nib.spatialimages.SpatialImage, np.ndarray, nib.spatialimages.SpatialImage, np.ndarray]:
    """The predicted and the reference mask as boolean arrays, with the images they come from (for their affines).

    Args:
        seg_path: the predicted mask (non-zero: the organ).
        label_path: the reference label map.
        label_values: the label values that mean the organ (liver: 1 in CHAOS, 5 in TotalSegmentator, 6 in BTCV).

    Returns:
        ``(seg_image, pred, label_image, ref)``.
    """
    seg, ref_image = nib.load(seg_path), nib.load(label_path)
    pred = np.asarray(seg.dataobj) > 0
    ref = np.isin(np.asarray(ref_image.dataobj).round().astype(int), list(label_values))
    return seg, pred, ref_image, ref


def volume_ratio_and_offset(
    seg: nib.spatialimages.SpatialImage,
    pred: np.ndarray,
    ref_image: nib.spatialimages.SpatialImage,
    ref: np.ndarray,
) -> tuple[float, float]:
    """Predicted / reference volume (> 1 over-segments), and how far right (mm, world RAS x) the prediction's centroid
    lies of the reference's: about minus the body's half width when the other side (the spleen) is segmented.

    Args:
        seg: the image of the predicted mask (its affine places ``pred``).
        pred: the predicted mask.
        ref_image: the image of the reference (its affine places ``ref``).
        ref: the reference mask.

    Returns:
        ``(volume_ratio, offset_right_mm)``; the offset is NaN when either mask is empty, rounded to 0.1 mm.
    """
    offset = float("nan")
    if pred.any() and ref.any():  # nibabel affines map to RAS+ world coordinates: +x is the patient's right
        centre = [
            img.affine[:3, :3] @ np.argwhere(m).mean(0) + img.affine[:3, 3]
            for img, m in ((seg, pred), (ref_image, ref))
        ]
        offset = float(centre[0][0] - centre[1][0])
    return float(pred.sum() / max(ref.sum(), 1)), round(offset, 1)
