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
"""Load and transform: readers, CT/MRI intensity, label remapping, 3-D to 2-D slices, data sets, phantom data,
random-appearance augmentation (GIN + IPA)."""

from __future__ import annotations

import importlib
from typing import Any

from monai_semgan.data.causal_augmentation import RandGIN, RandGINd
from monai_semgan.data.discovery import (
    CHAOS_PNG_CLASSES,
    convert_chaos_case,
    discover_cases,
    read_split,
    split_cases,
    write_json_atomic,
    write_split,
)
from monai_semgan.data.intensity import LIVER_WINDOW, CTWindowd, MRIPercentileNormalized
from monai_semgan.data.labels import LABEL_MAPS, LabelValues, RemapLabelsd, parse_label_values
from monai_semgan.data.loaders import SliceSampleDataset, make_slice_dataset, make_slice_loader
from monai_semgan.data.loading import LoadVolumed, source_filename, unwrap_transform_error
from monai_semgan.data.sitk_reader import SimpleITKReader, list_dicom_series
from monai_semgan.data.slices import AxialSliceStatsd, RandAxialSliced, axial_slices, body_slice_mask, stack_slices
from monai_semgan.data.validation import CheckAxialSlicesd, CheckVolumed
from monai_semgan.data.volume_pipeline import (
    MODALITIES,
    RESIZE_MODE,
    SquareAxialPadd,
    intensity_normalization,
    orient_ras,
    volume_preprocessing,
    volume_transforms,
)

# The phantom module is also a command (`python -m monai_semgan.data.phantom`); importing it here eagerly would make
# runpy warn that it was imported before being run, so its names are resolved on first access.
_PHANTOM_NAMES = ("PHANTOM_LABELS", "generate_phantom_case", "resolve_dataset_dir", "write_phantom_dataset")


def __getattr__(name: str) -> Any:
    if name in _PHANTOM_NAMES:
        return getattr(importlib.import_module("monai_semgan.data.phantom"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHAOS_PNG_CLASSES",
    "LABEL_MAPS",
    "LIVER_WINDOW",
    "MODALITIES",
    "PHANTOM_LABELS",
    "RESIZE_MODE",
    "AxialSliceStatsd",
    "CTWindowd",
    "CheckAxialSlicesd",
    "CheckVolumed",
    "LabelValues",
    "LoadVolumed",
    "MRIPercentileNormalized",
    "RandAxialSliced",
    "RandGIN",
    "RandGINd",
    "RemapLabelsd",
    "SimpleITKReader",
    "SliceSampleDataset",
    "SquareAxialPadd",
    "axial_slices",
    "body_slice_mask",
    "convert_chaos_case",
    "discover_cases",
    "generate_phantom_case",
    "intensity_normalization",
    "list_dicom_series",
    "make_slice_dataset",
    "make_slice_loader",
    "orient_ras",
    "parse_label_values",
    "read_split",
    "resolve_dataset_dir",
    "source_filename",
    "split_cases",
    "stack_slices",
    "unwrap_transform_error",
    "volume_preprocessing",
    "volume_transforms",
    "write_json_atomic",
    "write_phantom_dataset",
    "write_split",
]
