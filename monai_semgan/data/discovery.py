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
"""Find the cases of a data set, whatever its layout, and split them into labeled and unlabeled.

Layouts recognised by :func:`discover_cases`:

* a MONAI datalist JSON (``{"training": [{"image": ..., "label": ...}, ...]}``; items without ``label`` are unlabeled);
* LiTS: ``volume-N.nii[.gz]`` with ``segmentation-N.nii[.gz]``;
* this project's pairs: ``image_N.nii.gz`` with ``label_N.nii.gz`` (images without a label are unlabeled);
* ``imagesTr/`` + ``labelsTr/`` (Medical Segmentation Decathlon style; ``imagesTs/`` adds unlabeled cases);
* CHAOS: patient folders holding ``DICOM_anon/`` (CT) or ``T2SPIR/DICOM_anon``, ``T1DUAL/DICOM_anon/InPhase``,
  ``T1DUAL/DICOM_anon/OutPhase`` (MR), each with ``Ground/`` PNG masks; converted once to NIfTI pairs in a cache
  folder (see :func:`convert_chaos_case`), because PNG stacks carry no geometry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from monai.config import PathLike
from monai.data import load_decathlon_datalist

from monai_semgan.atomic_write import atomic_path
from monai_semgan.data.sitk_reader import list_dicom_series

__all__ = [
    "CHAOS_PNG_CLASSES",
    "convert_chaos_case",
    "discover_cases",
    "read_split",
    "split_cases",
    "write_json_atomic",
    "write_split",
]

# CHAOS ground-truth PNG grey values -> CHAOS class (1 liver, 2 right kidney, 3 left kidney, 4 spleen); CT masks are
# 255 for liver
CHAOS_PNG_CLASSES = {0: 0, 63: 1, 126: 2, 189: 3, 252: 4, 255: 1}
_NIFTI = re.compile(r"\.nii(\.gz)?$")


def _number(path: Path) -> int:
    found = re.findall(r"\d+", path.name)
    return int(found[-1]) if found else -1


def _case_id(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def write_json_atomic(data: Any, path: PathLike) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file.

    Args:
        data: JSON-serialisable data.
        path: destination (its folder is created).
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def convert_chaos_case(dicom_dir: PathLike, ground_dir: PathLike, out_dir: PathLike, case_id: str) -> dict[str, str]:
    """Convert one CHAOS series and its PNG masks to a NIfTI image/label pair with the series' geometry.

    The PNG files, sorted by name, follow the DICOM InstanceNumber order; the volume is assembled in the slice-position
    order SimpleITK reads, so each PNG is placed at its own slice.

    Args:
        dicom_dir: folder of one DICOM series.
        ground_dir: folder of PNG masks, one per slice.
        out_dir: folder for ``image_<case_id>.nii.gz`` and ``label_<case_id>.nii.gz`` (existing files are reused).
        case_id: name of the case.

    Returns:
        ``{"image": path, "label": path}``.

    Raises:
        ValueError: when the PNG count differs from the slice count, a PNG has another size than the slices, or holds
            grey values that are not CHAOS classes (messages name the folder or file).
    """
    out = Path(out_dir)
    image_path, label_path = out / f"image_{case_id}.nii.gz", out / f"label_{case_id}.nii.gz"
    if image_path.exists() and label_path.exists():
        return {"image": str(image_path), "label": str(label_path)}
    series = list_dicom_series(dicom_dir)
    if len(series) != 1:
        raise ValueError(f"{dicom_dir}: expected one DICOM series, found {len(series)}.")
    files = next(iter(series.values()))
    pngs = sorted(p for p in Path(ground_dir).iterdir() if p.suffix.lower() == ".png")
    if len(pngs) != len(files):
        raise ValueError(f"{ground_dir}: {len(pngs)} PNG masks for {len(files)} DICOM slices in {dicom_dir}.")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    image = reader.Execute()
    instance = []
    for name in files:
        header = sitk.ImageFileReader()
        header.SetFileName(name)
        header.ReadImageInformation()
        instance.append(int(header.GetMetaData("0020|0013")) if header.HasMetaDataKey("0020|0013") else len(instance))
    rank = np.argsort(np.argsort(instance))  # position in InstanceNumber order of each slice in SimpleITK's order
    slices = []
    for k in range(len(files)):
        png = pngs[int(rank[k])]
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(png)))
        if mask.ndim == 3:  # RGB(A) PNG: any channel holds the grey value
            mask = mask[..., 0]
        if mask.shape != (image.GetHeight(), image.GetWidth()):
            raise ValueError(
                f"{png}: mask size {mask.shape} differs from the slices' {image.GetHeight(), image.GetWidth()}."
            )
        unknown = sorted(set(np.unique(mask).tolist()) - set(CHAOS_PNG_CLASSES))
        if unknown:
            raise ValueError(f"{png}: grey values {unknown[:5]} are not CHAOS classes {sorted(CHAOS_PNG_CLASSES)}.")
        lut = np.zeros(256, dtype=np.uint8)
        for grey, cls in CHAOS_PNG_CLASSES.items():
            lut[grey] = cls
        slices.append(lut[mask.astype(np.uint8)])
    label = sitk.GetImageFromArray(np.stack(slices))
    label.CopyInformation(image)
    out.mkdir(parents=True, exist_ok=True)
    for img, path in ((image, image_path), (label, label_path)):
        with atomic_path(path, suffix=".nii.gz") as tmp:
            sitk.WriteImage(img, str(tmp))
    return {"image": str(image_path), "label": str(label_path)}


def _chaos_series(folder: Path, sequence: str) -> list[tuple[str, Path, Path]]:
    """(case id, DICOM folder, Ground folder) of each CHAOS patient folder under ``folder``."""
    found = []
    sub = {
        "T2SPIR": ("T2SPIR/DICOM_anon", "T2SPIR/Ground"),
        "T1DUAL_IN": ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/Ground"),
        "T1DUAL_OUT": ("T1DUAL/DICOM_anon/OutPhase", "T1DUAL/Ground"),
        "CT": ("DICOM_anon", "Ground"),
    }
    if sequence not in sub:
        raise ValueError(f"CHAOS sequence must be one of {sorted(sub)}, got {sequence!r}.")
    dicom_rel, ground_rel = sub[sequence]
    for patient in sorted((p for p in folder.iterdir() if p.is_dir()), key=_number):
        if (patient / dicom_rel).is_dir() and (patient / ground_rel).is_dir():
            found.append((f"{sequence.lower()}_{patient.name}", patient / dicom_rel, patient / ground_rel))
    return found


def discover_cases(
    source: PathLike, cache_dir: PathLike | None = None, chaos_sequence: str = "T2SPIR"
) -> list[dict[str, str]]:
    """List the cases of a data set as MONAI data dicts.

    Args:
        source: a data folder (any layout in the module docstring) or a datalist JSON file.
        cache_dir: where CHAOS cases are converted to NIfTI (required for the CHAOS layout only).
        chaos_sequence: CHAOS series to use: ``"T2SPIR"``, ``"T1DUAL_IN"``, ``"T1DUAL_OUT"`` or ``"CT"``.

    Returns:
        dicts with ``"image"``, ``"case_id"`` and, for labeled cases, ``"label"``; sorted by case number.

    Raises:
        FileNotFoundError: when ``source`` does not exist, or a listed file is missing.
        ValueError: when the folder is empty or in no known layout, or a CHAOS folder is given without ``cache_dir``.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: data folder or datalist does not exist.")
    if path.is_file():
        if path.suffix != ".json":
            raise ValueError(f"{path}: expected a folder or a MONAI datalist .json file.")
        items = load_decathlon_datalist(str(path), is_segmentation=True, data_list_key="training")
        cases = []
        for i, item in enumerate(items):
            case = {"image": str(item["image"]), "case_id": str(item.get("case_id", _case_id(Path(item["image"]))))}
            if item.get("label"):
                case["label"] = str(item["label"])
            for key in ("image", "label"):
                if key in case and not Path(case[key]).exists():
                    raise FileNotFoundError(f"{path}: item {i} lists {case[key]}, which does not exist.")
            cases.append(case)
        if not cases:
            raise ValueError(f"{path}: the datalist's 'training' list is empty.")
        return cases
    entries = list(path.iterdir())
    if not entries:
        raise ValueError(f"{path}: data folder is empty.")
    names = {p.name: p for p in entries}

    lits = sorted((p for p in entries if re.match(r"volume-\d+\.nii(\.gz)?$", p.name)), key=_number)
    if lits:
        cases = []
        for volume in lits:
            n = _number(volume)
            case = {"image": str(volume), "case_id": f"lits_{n}"}
            label = next(
                (names[f"segmentation-{n}{ext}"] for ext in (".nii", ".nii.gz") if f"segmentation-{n}{ext}" in names),
                None,
            )
            if label is not None:
                case["label"] = str(label)
            cases.append(case)
        return cases

    pairs = sorted((p for p in entries if re.match(r"image_\d+(\.nii(\.gz)?)?$", p.name)), key=_number)
    if pairs:
        cases = []
        for image in pairs:
            n = _number(image)
            case = {"image": str(image), "case_id": f"case_{n}"}
            label = next((names[f"label_{n}{ext}"] for ext in (".nii.gz", ".nii") if f"label_{n}{ext}" in names), None)
            if label is not None:
                case["label"] = str(label)
            cases.append(case)
        return cases

    if (path / "imagesTr").is_dir():
        cases = []
        for image in sorted((p for p in (path / "imagesTr").iterdir() if _NIFTI.search(p.name)), key=_number):
            case = {"image": str(image), "case_id": _case_id(image)}
            label = path / "labelsTr" / image.name
            if label.exists():
                case["label"] = str(label)
            cases.append(case)
        if (path / "imagesTs").is_dir():
            for image in sorted((p for p in (path / "imagesTs").iterdir() if _NIFTI.search(p.name)), key=_number):
                cases.append({"image": str(image), "case_id": _case_id(image)})
        if cases:
            return cases

    chaos = _chaos_series(path, chaos_sequence)
    if not chaos:
        for sub in ("Train_Sets/MR", "Train_Sets/CT", "MR", "CT"):
            if (path / sub).is_dir():
                chaos = _chaos_series(path / sub, chaos_sequence)
                if chaos:
                    break
    if chaos:
        if cache_dir is None:
            raise ValueError(f"{path}: a CHAOS data set is converted to NIfTI first; pass cache_dir.")
        return [
            {**convert_chaos_case(dicom, ground, cache_dir, case_id), "case_id": case_id}
            for case_id, dicom, ground in chaos
        ]

    nifti = sorted((p for p in entries if _NIFTI.search(p.name)), key=_number)
    if nifti:  # a folder of images without labels: all unlabeled
        return [{"image": str(p), "case_id": _case_id(p)} for p in nifti]
    raise ValueError(
        f"{path}: no known data layout (datalist .json, volume-N.nii, image_N.nii.gz/label_N.nii.gz, "
        "imagesTr/labelsTr, CHAOS patient folders, or NIfTI files)."
    )


def split_cases(
    cases: Sequence[dict[str, str]], num_labeled: int, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Pick ``num_labeled`` labeled cases at random (fixed seed); every other case is unlabeled data.

    Labeled cases that are not picked lose their label and join the unlabeled set: the semi-supervised setting.

    Args:
        cases: from :func:`discover_cases`.
        num_labeled: how many cases keep their labels (0 allowed; ``-1``: all labeled cases).
        seed: random seed of the pick.

    Returns:
        ``(labeled, unlabeled)``.

    Raises:
        ValueError: when fewer than ``num_labeled`` cases have labels.
    """
    with_label = [c for c in cases if c.get("label")]
    if num_labeled < 0:
        num_labeled = len(with_label)
    if num_labeled > len(with_label):
        raise ValueError(f"num_labeled={num_labeled} but only {len(with_label)} of {len(cases)} cases have labels.")
    order = np.random.default_rng(seed).permutation(len(with_label))
    chosen = {with_label[i]["case_id"] for i in order[:num_labeled]}
    labeled = [dict(c) for c in cases if c["case_id"] in chosen]
    unlabeled = [{k: v for k, v in c.items() if k != "label"} for c in cases if c["case_id"] not in chosen]
    return labeled, unlabeled


def write_split(
    output_dir: PathLike,
    labeled: Sequence[dict[str, str]],
    unlabeled: Sequence[dict[str, str]],
    num_labeled: int,
    seed: int,
    source: PathLike | None = None,
) -> Path:
    """Record the split a run used as ``split.json`` in its output folder, so the run can be reproduced.

    Args:
        output_dir: the run's output folder.
        labeled: labeled cases.
        unlabeled: unlabeled cases.
        num_labeled: the requested number of labeled cases.
        seed: the split's seed.
        source: the data folder or datalist the cases came from.

    Returns:
        the path (written by rank 0 only under ``torch.distributed``).
    """
    path = Path(output_dir) / "split.json"
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return path
    write_json_atomic(
        {
            "source": str(source) if source is not None else None,
            "num_labeled": num_labeled,
            "seed": seed,
            "labeled": list(labeled),
            "unlabeled": list(unlabeled),
        },
        path,
    )
    return path


def read_split(path: PathLike) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Read the ``split.json`` a training run wrote (see :func:`write_split`), e.g. to train the encoder on the GAN's
    labeled and unlabeled cases.

    Args:
        path: ``split.json``, or the run folder holding it.

    Returns:
        ``(labeled, unlabeled)``.

    Raises:
        FileNotFoundError: when the file does not exist (the GAN has not been trained into that folder).
        ValueError: when the file is not a split written by :func:`write_split`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no split.json; run the GAN training (configs/train.json) into that folder.")
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
        labeled, unlabeled = list(split["labeled"]), list(split["unlabeled"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a split written by the training run ({err}).") from err
    if not labeled:
        raise ValueError(f"{path}: the split has no labeled case; the encoder's label loss needs at least one.")
    return labeled, unlabeled
