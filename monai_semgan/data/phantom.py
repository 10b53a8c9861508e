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
"""A synthetic abdominal phantom with CT and MRI contrasts: the embedded default data set.

It exists so that the training command runs on a fresh machine with no data; it is no substitute for real scans in
benchmarks. Each case has a body outline with subcutaneous fat, a liver of varied shape and size, spleen, kidneys,
spine with spinal canal, ribs, aorta and vena cava, rendered as CT (Hounsfield units, int16, Gaussian noise) and as a
T1-like MRI (fat bright, vessels dark, a smooth bias field, Rician noise) over the same anatomy, plus a label map with
CHAOS's classes (1 liver, 2 right kidney, 3 left kidney, 4 spleen). Deterministic by seed.

Command line::

    python -m monai_semgan.data.phantom --out DIR --cases 10 --seed 0 [--modalities ct mri] [--format nifti|dicom]

writes ``DIR/ct/image_N.nii.gz``, ``DIR/ct/label_N.nii.gz`` and the same under ``DIR/mri/`` (N = 1..cases), or DICOM
series folders ``DIR/ct/image_N/`` with ``--format dicom``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from monai_semgan.atomic_write import atomic_dir, atomic_path

__all__ = [
    "PHANTOM_LABELS",
    "PhantomCase",
    "generate_phantom_case",
    "main",
    "resolve_dataset_dir",
    "write_phantom_dataset",
]

PHANTOM_LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}

# tissue -> (CT HU, MRI T1-like signal); the MRI order differs from CT's (fat brightest, vessels darkest)
_TISSUES = {
    "air": (-1000.0, 0.0),
    "fat": (-100.0, 950.0),
    "soft": (40.0, 380.0),
    "liver": (60.0, 620.0),
    "spleen": (48.0, 430.0),
    "kidney": (33.0, 470.0),
    "vessel": (170.0, 90.0),
    "bone": (750.0, 160.0),
    "marrow": (220.0, 560.0),
    "csf": (8.0, 150.0),
}


@dataclass
class PhantomCase:
    """One generated case: the same anatomy in both contrasts.

    Attributes:
        ct: CT in HU, int16 ``[X, Y, Z]``.
        mri: T1-like MRI, float32 ``[X, Y, Z]``, non-negative.
        label: uint8 ``[X, Y, Z]`` with :data:`PHANTOM_LABELS`.
        affine: 4 x 4 RAS affine (voxel to mm).
    """

    ct: np.ndarray
    mri: np.ndarray
    label: np.ndarray
    affine: np.ndarray


def _ellipsoid(grid: tuple[np.ndarray, ...], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    x, y, z = grid
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2


def generate_phantom_case(
    seed: int,
    shape: Sequence[int] = (128, 128, 48),
    spacing: Sequence[float] = (3.0, 3.0, 6.0),
) -> PhantomCase:
    """Generate one case.

    Args:
        seed: random seed; the same seed gives the same case.
        shape: voxels along x (right), y (anterior), z (superior).
        spacing: voxel size in mm.

    Returns:
        the case.

    Raises:
        ValueError: on a shape that is not 3-D or smaller than 16 voxels along an axis.
    """
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"shape must be 3-D with at least 16 voxels per axis, got {tuple(shape)}.")
    rng = np.random.default_rng(seed)
    sx, sy, sz = (float(s) for s in spacing)
    nx, ny, nz = (int(n) for n in shape)
    # world coordinates in mm, origin at the volume's centre, RAS
    xs = (np.arange(nx) - (nx - 1) / 2) * sx
    ys = (np.arange(ny) - (ny - 1) / 2) * sy
    zs = (np.arange(nz) - (nz - 1) / 2) * sz
    grid = np.meshgrid(xs, ys, zs, indexing="ij")
    x, y, z = grid
    half_x, half_y, half_z = nx * sx / 2, ny * sy / 2, nz * sz / 2
    scale = min(half_x / 190.0, half_y / 190.0)  # keeps the body inside small fields of view

    tissue = np.full(shape, "air", dtype=object)
    label = np.zeros(shape, dtype=np.uint8)

    # body: an elliptic cylinder whose size varies slowly along z, with a fat layer under the skin
    body_a = rng.uniform(150, 175) * scale * (1 + 0.04 * np.sin(z / half_z * np.pi + rng.uniform(0, 6)))
    body_b = rng.uniform(105, 125) * scale * (1 + 0.03 * np.cos(z / half_z * np.pi + rng.uniform(0, 6)))
    body_r = (x / body_a) ** 2 + ((y - 5 * scale) / body_b) ** 2
    fat_mm = rng.uniform(10, 25) * scale
    inner_r = (x / (body_a - fat_mm)) ** 2 + ((y - 5 * scale) / (body_b - fat_mm)) ** 2
    tissue[body_r <= 1] = "fat"
    tissue[inner_r <= 1] = "soft"
    inside = inner_r <= 1

    # ribs: bands of an elliptical shell just inside the fat, on the lateral and posterior sides
    shell = (inner_r > 0.82) & (inner_r <= 0.92)
    rib_phase = rng.uniform(0, 30)
    rib_bands = np.cos((z + rib_phase) / (24.0 * max(scale, 0.5)) * 2 * np.pi) > 0.55
    angle = np.arctan2(y, x)
    tissue[shell & rib_bands & (angle < 0.9) & (angle > -np.pi + 0.2) & (z > -half_z * 0.3)] = "bone"

    # liver: a deformed ellipsoid on the right (x > 0), upper abdomen; size and shape vary per case
    liver_c = (rng.uniform(45, 70) * scale, rng.uniform(-5, 20) * scale, rng.uniform(0.05, 0.3) * half_z)
    liver_r = (rng.uniform(70, 95) * scale, rng.uniform(60, 80) * scale, rng.uniform(0.45, 0.7) * half_z)
    theta = np.arctan2(y - liver_c[1], x - liver_c[0])
    bumps = sum(rng.uniform(-0.12, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    liver = (_ellipsoid(grid, liver_c, liver_r) <= (1 + bumps) ** 2) & inside
    # the left lobe tapers across the midline
    liver &= x > -liver_r[0] * 0.6 + 0.35 * (y - liver_c[1])
    tissue[liver] = "liver"
    label[liver] = PHANTOM_LABELS["liver"]

    # spleen, left posterior upper
    spleen_c = (-rng.uniform(70, 90) * scale, -rng.uniform(30, 50) * scale, rng.uniform(0.1, 0.35) * half_z)
    spleen_r = (rng.uniform(22, 32) * scale, rng.uniform(38, 50) * scale, rng.uniform(0.25, 0.4) * half_z)
    spleen = (_ellipsoid(grid, spleen_c, spleen_r) <= 1) & inside & ~liver
    tissue[spleen] = "spleen"
    label[spleen] = PHANTOM_LABELS["spleen"]

    # kidneys, posterior, below the liver's centre
    for side, name in ((1, "right_kidney"), (-1, "left_kidney")):
        c = (side * rng.uniform(50, 62) * scale, -rng.uniform(50, 62) * scale, -rng.uniform(0.05, 0.3) * half_z)
        r = (rng.uniform(20, 26) * scale, rng.uniform(24, 30) * scale, rng.uniform(0.3, 0.42) * half_z)
        kidney = (_ellipsoid(grid, c, r) <= 1) & inside & ~liver & ~spleen
        tissue[kidney] = "kidney"
        label[kidney] = PHANTOM_LABELS[name]

    # spine: vertebral body (cortex + marrow), spinal canal, posterior arch
    spine_y = -rng.uniform(68, 78) * scale
    vb = (x / (20 * scale)) ** 2 + ((y - spine_y) / (16 * scale)) ** 2
    tissue[vb <= 1] = "bone"
    tissue[vb <= 0.6] = "marrow"
    canal_y = spine_y - 26 * scale
    canal = (x / (8 * scale)) ** 2 + ((y - canal_y) / (7 * scale)) ** 2
    arch = (x / (17 * scale)) ** 2 + ((y - canal_y) / (14 * scale)) ** 2
    tissue[(arch <= 1) & (canal > 1)] = "bone"
    tissue[canal <= 1] = "csf"

    # aorta (left of midline, in front of the spine) and inferior vena cava (right)
    aorta = ((x + 14 * scale) ** 2 + (y - spine_y - 30 * scale) ** 2) <= (rng.uniform(9, 12) * scale) ** 2
    ivc = ((x - 22 * scale) ** 2 + (y - spine_y - 34 * scale) ** 2) <= (rng.uniform(8, 11) * scale) ** 2
    tissue[aorta | (ivc & ~liver)] = "vessel"
    # portal branches inside the liver: a few thin tubes
    for _ in range(3):
        c = liver_c[0] + rng.uniform(-20, 20) * scale, liver_c[1] + rng.uniform(-20, 20) * scale
        tube = ((x - c[0]) ** 2 + (y - c[1]) ** 2 <= (4 * scale) ** 2) & liver
        tissue[tube] = "vessel"

    ct = np.zeros(shape, dtype=np.float32)
    mri = np.zeros(shape, dtype=np.float32)
    jitter = {name: (rng.normal(0, 6), rng.normal(1, 0.06)) for name in _TISSUES}
    for name, (hu, signal) in _TISSUES.items():
        mask = tissue == name
        if mask.any():
            ct[mask] = hu + jitter[name][0]
            mri[mask] = signal * jitter[name][1]
    # partial-volume blur, then noise
    blur = (0.6, 0.6, 0.4)
    ct = ndimage.gaussian_filter(ct, blur) + rng.normal(0, 12, shape).astype(np.float32)
    mri = ndimage.gaussian_filter(mri, blur)
    # smooth multiplicative bias field (a random low-order polynomial over the field of view)
    u, v, w = x / half_x, y / half_y, z / half_z
    coeff = rng.uniform(-0.2, 0.2, size=6)
    bias = 1 + coeff[0] * u + coeff[1] * v + coeff[2] * w + coeff[3] * u * v + coeff[4] * u**2 + coeff[5] * v**2
    mri = mri * np.clip(bias, 0.5, 1.5)
    sigma = 18.0
    mri = np.sqrt((mri + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)  # Rician
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = [-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, -(nz - 1) / 2 * sz]
    return PhantomCase(
        ct=np.clip(np.rint(ct), -1024, 3071).astype(np.int16),
        mri=mri.astype(np.float32),
        label=label,
        affine=affine,
    )


def _atomic_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(nib.Nifti1Image(array, affine), tmp)


def _write_dicom_series(array: np.ndarray, affine: np.ndarray, folder: Path, modality: str, seed: int) -> None:
    """One DICOM file per axial slice, written to a temporary folder that is renamed into place."""
    with atomic_dir(folder) as tmp:
        # nibabel/RAS (x, y, z) to SimpleITK's LPS, (z, y, x) array order
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(np.int16))
        spacing = np.abs(np.diag(affine)[:3])
        image.SetSpacing(tuple(float(s) for s in spacing))
        ras_to_lps = np.diag([-1.0, -1.0, 1.0])
        direction = ras_to_lps @ (affine[:3, :3] / spacing)
        image.SetDirection(tuple(direction.flatten()))
        image.SetOrigin(tuple(ras_to_lps @ affine[:3, 3]))
        series_uid = f"1.2.826.0.1.3680043.10.1337.{seed}.{1 if modality == 'CT' else 2}"
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        direction_tag = "\\".join(f"{v:.6f}" for v in direction[:, 0].tolist() + direction[:, 1].tolist())
        for k in range(image.GetDepth()):
            piece = image[:, :, k]
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            tags = {
                "0008|0060": modality,
                "0008|0016": "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4",
                "0008|0018": f"{series_uid}.{k + 1}",
                "0020|000d": f"1.2.826.0.1.3680043.10.1337.{seed}",
                "0020|000e": series_uid,
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{p:.4f}" for p in position),
                "0020|0037": direction_tag,
                "0018|0050": f"{spacing[2]:.4f}",
                "0010|0020": f"phantom-{seed}",
                "0028|1052": "0",
                "0028|1053": "1",
            }
            for tag, value in tags.items():
                piece.SetMetaData(tag, value)
            writer.SetFileName(str(tmp / f"slice_{k + 1:04d}.dcm"))
            writer.Execute(piece)


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    num_cases: int = 10,
    seed: int = 0,
    modalities: Sequence[str] = ("ct", "mri"),
    file_format: str = "nifti",
    shape: Sequence[int] = (128, 128, 48),
    spacing: Sequence[float] = (3.0, 3.0, 6.0),
) -> dict[str, list[dict[str, str]]]:
    """Write a phantom data set; existing files of the same name are replaced atomically.

    Args:
        out_dir: output folder (created).
        num_cases: number of cases.
        seed: base seed; case ``n`` uses ``seed * 100003 + n``.
        modalities: any of ``"ct"``, ``"mri"``.
        file_format: ``"nifti"`` (``image_N.nii.gz`` / ``label_N.nii.gz``) or ``"dicom"`` (a series folder
            ``image_N/`` and a NIfTI label).
        shape: voxels per case.
        spacing: voxel size in mm.

    Returns:
        per modality, the list of ``{"image": path, "label": path}`` written (a MONAI datalist).

    Raises:
        ValueError: on an unknown modality or format, or ``num_cases`` < 1.
    """
    if num_cases < 1:
        raise ValueError(f"num_cases must be >= 1, got {num_cases}.")
    unknown = set(modalities) - {"ct", "mri"}
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; use 'ct' and/or 'mri'.")
    if file_format not in ("nifti", "dicom"):
        raise ValueError(f"file_format must be 'nifti' or 'dicom', got {file_format!r}.")
    out = Path(out_dir)
    datalists: dict[str, list[dict[str, str]]] = {m: [] for m in modalities}
    for modality in modalities:
        (out / modality).mkdir(parents=True, exist_ok=True)
    for n in range(1, num_cases + 1):
        case = generate_phantom_case(seed * 100003 + n, shape, spacing)
        for modality in modalities:
            folder = out / modality
            label_path = folder / f"label_{n}.nii.gz"
            _atomic_nifti(case.label, case.affine, label_path)
            array = case.ct if modality == "ct" else np.clip(np.rint(case.mri), 0, 32767).astype(np.int16)
            if file_format == "nifti":
                image_path = folder / f"image_{n}.nii.gz"
                _atomic_nifti(case.ct if modality == "ct" else case.mri, case.affine, image_path)
            else:
                image_path = folder / f"image_{n}"
                _write_dicom_series(array, case.affine, image_path, "CT" if modality == "ct" else "MR", n)
            datalists[modality].append({"image": str(image_path), "label": str(label_path)})
    return datalists


def resolve_dataset_dir(
    dataset_dir: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    modality: str = "ct",
    seed: int = 0,
    num_cases: int = 10,
) -> Path:
    """The data folder a run uses: ``dataset_dir`` when given, else the embedded phantom data set.

    An unset or empty ``dataset_dir`` (``""``, ``None``) means "no data of my own": the phantom is written once to
    ``output_dir/phantom`` (reused when its parameters match) and its ``modality`` folder is returned. A path that is
    given must exist (whether it holds data is checked by :func:`~monai_semgan.data.discovery.discover_cases`), so a
    mistyped path is an error, never silently phantom data.

    Args:
        dataset_dir: the user's data folder or datalist, or empty.
        output_dir: the run's output folder.
        modality: ``"ct"`` or ``"mri"`` (which phantom contrast to train on).
        seed: phantom seed.
        num_cases: phantom cases.

    Returns:
        the folder (or datalist) to discover cases in.

    Raises:
        FileNotFoundError: when ``dataset_dir`` is given and does not exist.
    """
    if dataset_dir:
        path = Path(dataset_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path}: data folder or datalist does not exist (dataset_dir).")
        return path
    root = Path(output_dir) / "phantom"
    marker = root / "phantom.json"
    params = {"num_cases": num_cases, "seed": seed, "modalities": ["ct", "mri"]}
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    # under torch.distributed rank 0 writes and the other ranks wait for it
    if (not distributed or torch.distributed.get_rank() == 0) and not (
        marker.exists() and json.loads(marker.read_text()) == params
    ):
        print(f"no dataset_dir given: writing {num_cases} synthetic phantom cases to {root}", flush=True)
        write_phantom_dataset(root, num_cases=num_cases, seed=seed)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps(params))
    if distributed:
        torch.distributed.barrier()
    return root / modality


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m monai_semgan.data.phantom", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--modalities", nargs="+", default=["ct", "mri"], choices=["ct", "mri"])
    parser.add_argument("--format", default="nifti", choices=["nifti", "dicom"], dest="file_format")
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 128, 48], help="voxels x y z")
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.0, 3.0, 6.0], help="voxel size in mm")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    lists = write_phantom_dataset(
        args.out, args.cases, args.seed, args.modalities, args.file_format, args.shape, args.spacing
    )
    for modality, items in lists.items():
        print(f"{modality}: {len(items)} cases in {Path(args.out) / modality}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
