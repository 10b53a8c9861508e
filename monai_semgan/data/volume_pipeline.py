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
"""The one volume pipeline: what happens to every volume before the networks see it, in training, inference,
evaluation and MONAI Label alike.

Load (NIfTI or DICOM series) -> channel first -> checks (3-D, one channel, finite, not constant, axial slices; label
geometry) -> RAS -> intensity to [-1, 1] (CT window in HU, or MRI percentiles) -> labels to model classes
(``label_values``) -> pad the axial plane to a square -> resize it to the generator's resolution, depth unchanged.

Every step is recorded in the MetaTensors' applied operations, so ``Invertd`` maps slice-wise results back onto the
input's grid. The in-plane resize is one policy for everyone: ``area`` (the mean over each output pixel's footprint),
the resize the models are trained with, chosen by measurement (docs/benchmarks.md, "Resize policy").
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, Orientationd, Resized, SpatialPadd

from monai_semgan.data.intensity import LIVER_WINDOW, CTWindowd, MRIPercentileNormalized
from monai_semgan.data.labels import LabelValues, RemapLabelsd
from monai_semgan.data.loading import LoadVolumed
from monai_semgan.data.validation import CheckAxialSlicesd, CheckVolumed

__all__ = [
    "MODALITIES",
    "RESIZE_MODE",
    "SquareAxialPadd",
    "intensity_normalization",
    "orient_ras",
    "volume_preprocessing",
    "volume_transforms",
]

MODALITIES = ("ct", "mri")
RESIZE_MODE = "area"
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # explicit: MONAI warns when the default is implied


def orient_ras(keys: KeysCollection, allow_missing_keys: bool = False) -> Orientationd:
    """``Orientationd`` to RAS with the axis labels stated (MONAI warns when they are implied)."""
    return Orientationd(keys, axcodes="RAS", labels=_RAS_LABELS, allow_missing_keys=allow_missing_keys)


def intensity_normalization(
    modality: str,
    key: str = "image",
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
) -> CTWindowd | MRIPercentileNormalized:
    """The modality's intensity transform to [-1, 1]: the CT window ``(level, width)`` in HU, or the MRI percentiles.

    Raises:
        ValueError: on an unknown modality.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    if modality == "ct":
        return CTWindowd(key, level=ct_window[0], width=ct_window[1])
    return MRIPercentileNormalized(key, lower=mri_percentiles[0], upper=mri_percentiles[1])


class SquareAxialPadd(SpatialPadd):
    """Pad the two in-plane axes of ``[C, H, W, D]`` volumes to a square (centred), so resizing keeps the aspect.

    Invertible like ``SpatialPadd`` (the pad widths are recorded in the MetaTensor's applied operations).

    Args:
        keys: keys to pad (image and label together).
        value: pad value per key, e.g. ``(-1.0, 0)`` for a normalized image (air) and a label (background).
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, value: Sequence[float] | float = 0.0, allow_missing_keys=False) -> None:
        super().__init__(keys, spatial_size=(-1, -1, -1), mode="constant", allow_missing_keys=allow_missing_keys)
        keys_tuple = (keys,) if isinstance(keys, str) else tuple(keys)
        self.values = tuple(value) if isinstance(value, Sequence) else (value,) * len(keys_tuple)

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict:
        d = dict(data)
        for key, value in zip(self.keys, self.values):
            if key not in d:
                continue
            size = max(d[key].shape[1], d[key].shape[2])
            self.padder.spatial_size = (size, size, -1)
            d[key] = self.padder(d[key], mode="constant", value=value, lazy=lazy)
        return d


def volume_transforms(
    modality: str,
    resolution: int,
    image_key: str = "image",
    label_key: str | None = None,
    label_values: LabelValues = 1,
    label_on_input_grid: bool = False,
    num_classes: int = 2,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    allow_missing_label: bool = False,
) -> list:
    """The deterministic, invertible per-volume transforms, as a list (training appends its slice sampling).

    Args:
        modality: ``"ct"`` (HU window) or ``"mri"`` (percentiles).
        resolution: in-plane size after resizing (the generator's).
        image_key: key of the image.
        label_key: key of the label, or ``None``.
        label_values: which label values are the structure (see :func:`~monai_semgan.data.parse_label_values`:
            ``1``, ``[1, 2]``, ``{"6": 1}``, ``"btcv"``); every other value is background.
        label_on_input_grid: keep the label on the input's grid (evaluation measures Dice there) instead of
            bringing it to the generator's grid with the image (training).
        num_classes: classes including background.
        ct_window: ``(level, width)`` in HU.
        mri_percentiles: ``(lower, upper)``.
        allow_missing_label: a case without a label passes (the label steps skip it).

    Returns:
        MONAI transforms ending with a ``[1, resolution, resolution, D]`` float32 image MetaTensor (and a uint8
        label).

    Raises:
        ValueError: on an unknown modality or ``label_values`` specification.
    """
    keys = [image_key] + ([label_key] if label_key else [])
    label_keys = [label_key] if label_key else []
    resampled = keys if not label_on_input_grid else [image_key]
    optional = allow_missing_label and bool(label_key)
    transforms: list = [
        LoadVolumed(keys, allow_missing_keys=optional),
        EnsureChannelFirstd(keys, allow_missing_keys=optional),
        CheckVolumed(image_key, label_keys=label_keys, allow_constant=False, allow_missing_keys=optional),
        CheckAxialSlicesd(image_key),
        orient_ras(resampled, allow_missing_keys=optional),
        intensity_normalization(modality, image_key, ct_window, mri_percentiles),
    ]
    if label_key:
        transforms.append(
            RemapLabelsd(label_key, label_values, others=0, num_classes=num_classes, allow_missing_keys=optional)
        )
    transforms += [
        SquareAxialPadd(resampled, value=(-1.0, 0)[: len(resampled)], allow_missing_keys=optional),
        Resized(image_key, spatial_size=(resolution, resolution, -1), mode=RESIZE_MODE),
        EnsureTyped(image_key, dtype=torch.float32, track_meta=True),
    ]
    if label_key:
        if not label_on_input_grid:
            transforms.append(
                Resized(
                    label_key, spatial_size=(resolution, resolution, -1), mode="nearest", allow_missing_keys=optional
                )
            )
        transforms.append(EnsureTyped(label_key, dtype=torch.uint8, track_meta=True, allow_missing_keys=optional))
    return transforms


def volume_preprocessing(
    modality: str,
    resolution: int,
    label_key: str | None = None,
    label_values: LabelValues = 1,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    image_key: str = "image",
) -> Compose:
    """The pipeline of inference and evaluation: :func:`volume_transforms` with any label left on the input's grid, as
    one ``Compose`` that ``Invertd`` can undo.

    Args:
        modality: ``"ct"`` or ``"mri"``.
        resolution: the generator's resolution.
        label_key: key of the reference label (evaluation), or ``None``.
        label_values: see :func:`volume_transforms`.
        ct_window: ``(level, width)`` in HU.
        mri_percentiles: ``(lower, upper)``.
        image_key: key of the image.

    Returns:
        the transform.
    """
    return Compose(
        volume_transforms(
            modality,
            resolution,
            image_key=image_key,
            label_key=label_key,
            label_values=label_values,
            label_on_input_grid=True,
            ct_window=ct_window,
            mri_percentiles=mri_percentiles,
        )
    )
