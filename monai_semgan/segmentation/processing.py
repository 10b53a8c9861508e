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
"""What happens around slice-wise segmentation: the inputs found under a path, and the postprocessing that maps the
logits back onto the input's grid (undoing :func:`~monai_semgan.data.volume_preprocessing`) and writes the mask."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
from monai.data import NibabelWriter
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    Compose,
    CopyItemsd,
    Invertd,
    KeepLargestConnectedComponentd,
    SaveImaged,
)

from monai_semgan.atomic_write import atomic_path, remove_partial_files
from monai_semgan.data.discovery import discover_cases
from monai_semgan.data.sitk_reader import list_dicom_series

__all__ = [
    "MASK_DESCRIPTION",
    "OUTPUT_POSTFIXES",
    "AtomicNibabelWriter",
    "check_outputs",
    "check_writable_folder",
    "is_project_output",
    "labeled_volumes",
    "list_volumes",
    "segmentation_postprocessing",
]

_NIFTI = (".nii", ".nii.gz")
# what the project writes: <case>_<postfix>.nii.gz with this NIfTI header description, so it never reads them as input
MASK_DESCRIPTION = b"monai-semgan segmentation"
OUTPUT_POSTFIXES = ("seg", "prob")

logger = logging.getLogger(__name__)


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_NIFTI)


def _case(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_project_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a mask or probability map this project wrote (``<case>_seg.nii.gz`` or ``_prob.nii.gz``
    whose NIfTI header description is :data:`MASK_DESCRIPTION`)."""
    path = Path(path)
    if not (path.is_file() and any(path.name.endswith(f"_{p}.nii.gz") for p in OUTPUT_POSTFIXES)):
        return False
    try:
        return bytes(nib.load(str(path)).header["descrip"]).startswith(MASK_DESCRIPTION)
    except Exception:  # unreadable: not ours
        return False


def check_writable_folder(folder: str | os.PathLike, setting: str = "output_dir") -> None:
    """Refuse a folder that is a file or cannot be written (checked on the folder, or the first existing parent that
    would hold it), before anything is written into it.

    Args:
        folder: the output folder, existing or to be created.
        setting: the setting's name, for the message.

    Raises:
        ValueError: when ``folder`` or a parent is a file.
        PermissionError: when the folder (or the parent it would be created in) is not writable.
    """
    path = Path(folder).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing}: is a file, so {setting} {path} cannot be a folder; choose another {setting}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (where {path} would be created)"
        raise PermissionError(f"{existing}: not writable{where}; choose another {setting}.")


def check_outputs(
    items: Sequence[Mapping[str, str]], output_dir: str | os.PathLike, postfixes: Sequence[str] = OUTPUT_POSTFIXES
) -> None:
    """Refuse, before anything is written, outputs that would replace an input or each other, and an output folder
    that cannot be written.

    The outputs of an item are ``<output_dir>/<case>_<postfix>.nii.gz``. An output may replace a mask this project
    wrote earlier (:func:`is_project_output`), nothing else. Partial files that a killed run left in ``output_dir``
    are removed (:func:`~monai_semgan.atomic_write.remove_partial_files`).

    Args:
        items: data dicts; every string value that names an existing file or folder is an input.
        output_dir: where the outputs go.
        postfixes: the output postfixes.

    Raises:
        ValueError: naming the files, when an output is an input, two inputs share an output, or an output would
            replace a file the project did not write; or when ``output_dir`` is a file.
        PermissionError: when ``output_dir`` (or the folder it would be created in) is not writable.
    """
    check_writable_folder(output_dir, "output_dir")
    remove_partial_files(output_dir)
    inputs = {Path(v).resolve() for item in items for v in item.values() if isinstance(v, str) and os.path.exists(v)}
    planned: dict[Path, str] = {}
    for item in items:
        image = str(item["image"])
        for postfix in postfixes:
            out = (Path(output_dir) / f"{_case(image)}_{postfix}.nii.gz").resolve()
            if out in inputs:
                raise ValueError(f"{out}: the output of {image} would overwrite an input; choose another output_dir.")
            if out in planned:
                raise ValueError(f"{planned[out]} and {image} would both be written to {out}; rename one of them.")
            if out.exists() and not is_project_output(out):
                raise ValueError(
                    f"{out}: exists and was not written by monai-semgan; refusing to replace it (choose another "
                    "output_dir)."
                )
            planned[out] = image


def list_volumes(
    path: str | os.PathLike, output_dir: str | os.PathLike | None = None, image_key: str = "image"
) -> list[dict[str, str]]:
    """The volumes to segment under ``path``: a NIfTI file, a DICOM series folder, or a folder of NIfTI files and
    DICOM series sub-folders (not recursive beyond that). Masks this project wrote are skipped
    (:func:`is_project_output`), so segmenting a folder twice does not segment its masks.

    Args:
        path: file or folder.
        output_dir: where the masks will go; given, the outputs are checked with :func:`check_outputs` first.
        image_key: key of the image path in the returned dicts.

    Returns:
        ``[{image_key: path}, ...]`` sorted by name.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when it is a file that is not NIfTI (or a mask of this project), a folder with no volume in it,
            or the outputs would replace inputs or each other.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder to segment.")
    if root.is_file():
        if not _is_nifti(root):
            raise ValueError(f"{root}: expected a NIfTI file (.nii / .nii.gz) or a DICOM series folder.")
        if is_project_output(root):
            raise ValueError(f"{root}: a mask written by monai-semgan, not an image to segment.")
        found = [root]
    elif list_dicom_series(root):
        found = [root]
    else:
        found = [
            p
            for p in sorted(root.iterdir())
            if (_is_nifti(p) and not is_project_output(p)) or (p.is_dir() and list_dicom_series(p))
        ]
        if not found:
            raise ValueError(f"{root}: no NIfTI file or DICOM series found in this folder.")
    items = [{image_key: str(p)} for p in found]
    if output_dir is not None:
        check_outputs([{"image": d[image_key]} for d in items], output_dir)
    return items


def labeled_volumes(
    source: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
) -> list[dict[str, str]]:
    """The labeled cases of a data folder (``image_N`` / ``label_N`` pairs, imagesTr/labelsTr, LiTS, CHAOS) or a MONAI
    datalist, for evaluation.

    Args:
        source: folder or datalist ``.json``.
        cache_dir: conversion cache, needed for the raw CHAOS layout only.
        output_dir: where the masks will go; given, the outputs are checked with :func:`check_outputs` first.

    Returns:
        ``[{"image": ..., "label": ..., "case_id": ...}, ...]``; images without a label are left out and named in a
        warning.

    Raises:
        FileNotFoundError: when ``source`` does not exist.
        ValueError: when it holds no labeled case, or the outputs would replace inputs or each other.
    """
    found = discover_cases(source, cache_dir=cache_dir)
    cases = [c for c in found if c.get("label")]
    unlabeled = [str(c["image"]) for c in found if not c.get("label")]
    if unlabeled:
        logger.warning(f"{len(unlabeled)} image(s) without a label file, not scored: {', '.join(unlabeled)}")
    if not cases:
        raise ValueError(f"{source}: no labeled case (image_N.nii.gz with label_N.nii.gz, or a datalist with labels).")
    if output_dir is not None:
        check_outputs(cases, output_dir)
    return cases


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file beside the destination and renaming it, so a stopped run
    never leaves half a mask; it refuses to write over the volume being segmented, and marks what it writes with
    :data:`MASK_DESCRIPTION` in the NIfTI header (see :func:`is_project_output`)."""

    @classmethod
    def create_backend_obj(cls, data_array, affine=None, dtype=None, **kwargs):  # type: ignore[override]
        """MONAI's NIfTI image, with the header description that marks the project's outputs."""
        image = super().create_backend_obj(data_array, affine=affine, dtype=dtype, **kwargs)
        image.header["descrip"] = MASK_DESCRIPTION
        return image

    def write(self, filename: str | os.PathLike, verbose: bool = False, **obj_kwargs) -> None:  # type: ignore[override]
        """Write ``filename`` atomically (see ``NibabelWriter.write``).

        Raises:
            ValueError: when ``filename`` is the input volume itself.
        """
        path = Path(filename)
        source = self.data_obj.meta.get("filename_or_obj") if hasattr(self.data_obj, "meta") else None
        if source and path.exists() and path.resolve() == Path(str(source)).resolve():
            raise ValueError(f"{path}: refusing to overwrite the input volume; choose another output_dir or postfix.")
        suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
        with atomic_path(path, suffix=suffix) as tmp:
            super().write(str(tmp), verbose=verbose, **obj_kwargs)


def segmentation_postprocessing(
    preprocessing: Compose,
    output_dir: str | os.PathLike,
    label_channels: int = 1,
    threshold: float = 0.5,
    save_probabilities: bool = False,
    keep_largest_component: bool = True,
    image_key: str = "image",
    pred_key: str = "pred",
) -> Compose:
    """Logits on the generator's grid -> probabilities -> the input's grid (``Invertd``) -> mask, written as
    ``<name>_seg.nii.gz`` (uint8) with the input's shape and affine, and optionally ``<name>_prob.nii.gz``.

    Args:
        preprocessing: the transform returned by :func:`~monai_semgan.data.volume_preprocessing` (what ``Invertd``
            undoes).
        output_dir: output folder (created).
        label_channels: the generator's label channels (1: sigmoid and ``threshold``; more: softmax and argmax).
        threshold: foreground threshold on the probability (binary models).
        save_probabilities: also write the probability map (float32; foreground for binary models).
        keep_largest_component: keep only the largest 3-D connected component of each class (MONAI's
            ``KeepLargestConnectedComponentd``): the liver is one organ, and scattered false positives far from it
            are what the 95 % Hausdorff distance punishes.
        image_key: key of the preprocessed image.
        pred_key: key of the network output.

    Returns:
        the transform, applied to each decollated item.
    """
    binary = label_channels == 1
    common = {
        "output_dir": str(output_dir),
        "separate_folder": False,
        "resample": False,
        "print_log": False,
        "writer": AtomicNibabelWriter,
    }
    transforms: list = [
        Activationsd(pred_key, sigmoid=binary, softmax=not binary),
        Invertd(pred_key, transform=preprocessing, orig_keys=image_key, nearest_interp=False, to_tensor=True),
    ]
    if save_probabilities:
        transforms += [
            CopyItemsd(pred_key, names="probability"),
            SaveImaged("probability", output_postfix="prob", output_dtype="float32", **common),
        ]
    transforms += [
        AsDiscreted(pred_key, threshold=threshold) if binary else AsDiscreted(pred_key, argmax=True),
    ]
    if keep_largest_component:
        transforms.append(
            KeepLargestConnectedComponentd(pred_key, applied_labels=[1] if binary else None, is_onehot=False)
        )
    transforms.append(SaveImaged(pred_key, output_postfix="seg", output_dtype="uint8", **common))
    return Compose(transforms)
