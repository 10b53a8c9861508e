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
"""Early, explicit checks of loaded volumes, so bad input fails with the file's name before anything is written."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_semgan.data.loading import source_filename

__all__ = ["CheckVolumed"]


class CheckVolumed(MapTransform):
    """Check channel-first volumes: one channel, three spatial axes, finite values, and labels that match their image.

    Place it right after ``LoadImaged`` + ``EnsureChannelFirstd``.

    Args:
        keys: image keys.
        label_keys: label keys, each checked against the first image key for shape and affine.
        affine_atol: tolerance (mm) when comparing affines.
        allow_missing_keys: skip missing keys (e.g. unlabeled cases without a label).

    Raises:
        ValueError: naming the file: a 2-D or 4-D volume, several channels, NaN or infinite voxels,
            a label whose shape or affine differs from its image's.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = (),
        affine_atol: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_keys = (label_keys,) if isinstance(label_keys, str) else tuple(label_keys)
        self.affine_atol = affine_atol

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image_key = None
        for key in self.key_iterator(d):
            self._check_volume(d[key], source_filename(d, key))
            array = d[key]
            if not bool(torch.isfinite(torch.as_tensor(array)).all()):
                raise ValueError(f"{source_filename(d, key)}: image holds NaN or infinite voxels.")
            image_key = image_key or key
        for key in self.label_keys:
            if key not in d:
                continue
            name = source_filename(d, key)
            self._check_volume(d[key], name)
            if image_key is None:
                continue
            image, label = d[image_key], d[key]
            if tuple(image.shape[1:]) != tuple(label.shape[1:]):
                raise ValueError(
                    f"{name}: label shape {tuple(label.shape[1:])} differs from image shape {tuple(image.shape[1:])} "
                    f"({source_filename(d, image_key)})."
                )
            a, b = getattr(image, "affine", None), getattr(label, "affine", None)
            if a is not None and b is not None and not np.allclose(np.asarray(a), np.asarray(b), atol=self.affine_atol):
                raise ValueError(
                    f"{name}: label affine differs from the image's ({source_filename(d, image_key)}):\n"
                    f"{np.asarray(b).round(3)}\nvs\n{np.asarray(a).round(3)}"
                )
        return d

    @staticmethod
    def _check_volume(array: torch.Tensor, name: str) -> None:
        if array.ndim != 4:
            raise ValueError(
                f"{name}: expected a 3-D volume (channel-first [1, H, W, D]), got {array.ndim - 1} spatial axes, "
                f"shape {tuple(array.shape[1:])}."
            )
        if array.shape[0] != 1:
            raise ValueError(f"{name}: expected one channel, got {array.shape[0]} (a 4-D or multi-channel image).")
        if min(array.shape[1:]) < 2:
            raise ValueError(f"{name}: expected a 3-D volume, got spatial shape {tuple(array.shape[1:])}.")
