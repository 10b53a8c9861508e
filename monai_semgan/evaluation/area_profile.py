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
"""The organ's area in every axial slice of a volume, from the feet to the head: where along the body a mask lies.

A slice-wise model that draws the organ into every slice of the abdomen has a flat profile that runs past both ends of
the reference's; :func:`outside_share` puts a number on it. The affine of the NIfTI image says which array axis is
axial and which way it runs, so volumes stored in any orientation give comparable profiles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_semgan.evaluation._plotting import new_figure, save_figure

__all__ = [
    "METHOD_STYLE",
    "area_profile",
    "axial_axis",
    "axial_profiles",
    "in_plane_voxel_cm2",
    "outside_share",
    "plot_area_profiles",
    "share_outside_organ_slices",
    "voxel_profile",
]

METHOD_STYLE: dict[str, tuple[str, str]] = {
    "reference": ("black", "reference"),
    "semgan_quick": ("tab:red", "SemanticGAN (encoder)"),
    "semgan_optimize": ("tab:orange", "SemanticGAN (optimize)"),
    "unet": ("tab:blue", "U-Net"),
    "position_prior": ("tab:green", "position prior (no image)"),
}
"""Colour and legend label of each curve of :func:`plot_area_profiles`; other names are drawn grey."""


def axial_axis(image: nib.spatialimages.SpatialImage) -> int:
    """The array axis of a NIfTI image that runs along the body (its affine's S or I axis).

    Args:
        image: the image.

    Returns:
        the axis, 0 to 2.
    """
    return [i for i, code in enumerate(nib.aff2axcodes(image.affine)) if code in "SI"][0]


def in_plane_voxel_cm2(image: nib.spatialimages.SpatialImage) -> float:
    """The area of one voxel in an axial slice, in cm^2.

    Args:
        image: the image.

    Returns:
        the area.
    """
    sizes = nib.affines.voxel_sizes(image.affine)
    return float(np.prod([sizes[i] for i in range(3) if i != axial_axis(image)])) / 100


def voxel_profile(mask: np.ndarray, image: nib.spatialimages.SpatialImage) -> np.ndarray:
    """Voxels of ``mask`` in each axial slice, from the feet to the head.

    Args:
        mask: a 3-D mask on ``image``'s grid.
        image: the image whose affine places ``mask``.

    Returns:
        one count per axial slice.
    """
    axial = axial_axis(image)
    other = tuple(i for i in range(3) if i != axial)
    order = slice(None, None, -1 if nib.aff2axcodes(image.affine)[axial] == "I" else 1)
    return np.asarray(mask).sum(axis=other)[order]


def area_profile(mask: np.ndarray, image: nib.spatialimages.SpatialImage) -> np.ndarray:
    """The area (cm^2) of ``mask`` in each axial slice, from the feet to the head.

    Args:
        mask: a 3-D mask on ``image``'s grid.
        image: the image whose affine places ``mask``.

    Returns:
        one area per axial slice.
    """
    return voxel_profile(mask, image) * in_plane_voxel_cm2(image)


def axial_profiles(
    pred: np.ndarray, ref_image: nib.spatialimages.SpatialImage, ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels per axial slice of a prediction and of the reference on the same grid, from the feet to the head.

    Args:
        pred: the predicted mask.
        ref_image: the image whose affine places both masks.
        ref: the reference mask.

    Returns:
        ``(predicted, reference)`` counts.
    """
    return voxel_profile(pred, ref_image), voxel_profile(ref, ref_image)


def outside_share(per_slice: np.ndarray, ref_per_slice: np.ndarray) -> float:
    """Share of a prediction's voxels in the axial slices where the reference has no organ at all.

    Args:
        per_slice: the prediction's profile.
        ref_per_slice: the reference's profile (same slices).

    Returns:
        the share, 0 to 1 (0 for an empty prediction).
    """
    per_slice, ref_per_slice = np.asarray(per_slice), np.asarray(ref_per_slice)
    return float(per_slice[ref_per_slice == 0].sum() / max(per_slice.sum(), 1))


def share_outside_organ_slices(pred: np.ndarray, ref_image: nib.spatialimages.SpatialImage, ref: np.ndarray) -> float:
    """:func:`outside_share` of two masks on the same grid: a slice-wise model that draws the organ into every slice
    of the abdomen scores high here.

    Args:
        pred: the predicted mask.
        ref_image: the image whose affine places both masks.
        ref: the reference mask.

    Returns:
        the share, 0 to 1.
    """
    return outside_share(*axial_profiles(pred, ref_image, ref))


def plot_area_profiles(
    profiles: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], path: str | os.PathLike, title: str = ""
) -> Path:
    """One panel per test case: the organ's area in each axial slice, the reference and every method. Needs
    matplotlib.

    Args:
        profiles: ``{test set: {case: {curve: areas}}}``; curves named as in :data:`METHOD_STYLE` (``"reference"``
            and the methods) get its colour and label, others are grey.
        path: the PNG file (written atomically).
        title: the figure's title.

    Returns:
        the path written.

    Raises:
        ValueError: when ``profiles`` holds no case.
        ImportError: when matplotlib is not installed.
    """
    panels = [(s, case, curves) for s, cases in profiles.items() for case, curves in cases.items()]
    if not panels:
        raise ValueError("no area profile to plot.")
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure(figsize=(3.2 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (set_name, case, curves) in zip(axes.flat, panels):
        for method, area in curves.items():
            color, label = METHOD_STYLE.get(method, ("grey", method))
            ax.plot(np.arange(len(area)), area, color=color, lw=2.2 if method == "reference" else 1.4, label=label)
        ax.set_title(f"{set_name} / {case}", fontsize=9)
        ax.set_xlabel("axial slice (feet -> head)", fontsize=8)
        ax.set_ylabel("organ area, cm^2", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
