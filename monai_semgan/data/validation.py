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

__all__ = ["CheckAxialSlicesd", "CheckVolumed"]


class CheckVolumed(MapTransform):
    """Check channel-first volumes: one channel, three spatial axes, finite values, and labels that match their image.

    Place it right after ``LoadImaged`` + ``EnsureChannelFirstd``.

    Args:
        keys: image keys.
        label_keys: label keys, each checked against the first image key for shape and affine.
        affine_atol: tolerance (mm) when comparing affines.
        allow_constant: accept images whose voxels all have one value (``False`` at inference: such an image has
            nothing to segment and cannot be normalized).
        allow_missing_keys: skip missing keys (e.g. unlabeled cases without a label).

    Raises:
        ValueError: naming the file: a 2-D or 4-D volume, several channels, NaN or infinite voxels, a constant image
            (unless allowed), a label whose shape or affine differs from its image's.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_keys: KeysCollection = (),
        affine_atol: float = 1e-3,
        allow_constant: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.label_keys = (label_keys,) if isinstance(label_keys, str) else tuple(label_keys)
        self.affine_atol = affine_atol
        self.allow_constant = allow_constant

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        image_key = None
        for key in self.key_iterator(d):
            self._check_volume(d[key], source_filename(d, key))
            array = d[key]
            if not bool(torch.isfinite(torch.as_tensor(array)).all()):
                raise ValueError(f"{source_filename(d, key)}: image holds NaN or infinite voxels.")
            if not self.allow_constant:
                values = torch.as_tensor(array)
                if bool((values == values.reshape(-1)[0]).all()):
                    raise ValueError(
                        f"{source_filename(d, key)}: every voxel has the value {float(values.reshape(-1)[0])}; "
                        "a constant image has nothing to segment."
                    )
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


class CheckAxialSlicesd(MapTransform):
    """Check that a channel-first volume is a stack of axial slices, since the generator only knows axial anatomy.

    Uses the affine (place it before ``Orientationd``): the voxel axis closest to the superior direction is the slice
    axis. Two signs of a volume that is not axial-major: the in-plane field of view is far from square (a sagittal or
    coronal stack, or an array stored slice-first with an identity affine), or the coarsest voxel spacing is not along
    the slice axis (a sagittal or coronal acquisition).

    Args:
        keys: image keys.
        max_aspect: largest accepted ratio of the two in-plane extents (mm).
        anisotropy: spacing ratio above which the coarsest axis must be the slice axis.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: naming the file, when the volume does not look axial.
    """

    def __init__(
        self, keys: KeysCollection, max_aspect: float = 3.0, anisotropy: float = 1.5, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.max_aspect = max_aspect
        self.anisotropy = anisotropy

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            affine = getattr(d[key], "affine", None)
            if affine is None:
                continue
            name = source_filename(d, key)
            axes = np.asarray(affine, dtype=float)[:3, :3]
            spacing = np.linalg.norm(axes, axis=0)
            slice_axis = int(np.argmax(np.abs(axes[2]) / np.maximum(spacing, 1e-12)))
            shape = np.asarray(d[key].shape[1:4], dtype=float)
            in_plane = [a for a in range(3) if a != slice_axis]
            extent = shape[in_plane] * spacing[in_plane]
            aspect = float(extent.max() / max(extent.min(), 1e-12))
            if aspect > self.max_aspect:
                raise ValueError(
                    f"{name}: the slices are not axial: the plane across the superior axis (voxel axis {slice_axis}) "
                    f"is {extent[0]:.0f} x {extent[1]:.0f} mm (aspect {aspect:.1f}). Is the array stored slice-first, "
                    "or is the affine wrong? The model segments axial slices."
                )
            coarse = int(np.argmax(spacing))
            if spacing.max() / max(spacing.min(), 1e-12) > self.anisotropy and coarse != slice_axis:
                raise ValueError(
                    f"{name}: the slices are not axial: the coarsest spacing ({spacing[coarse]:.2f} mm, voxel axis "
                    f"{coarse}) is not along the superior axis (voxel axis {slice_axis}); this looks like a sagittal "
                    "or coronal acquisition. The model segments axial slices."
                )
        return d
