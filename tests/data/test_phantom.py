"""The embedded phantom data set: deterministic, anatomically ordered, both contrasts, NIfTI and DICOM, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage

from monai_semgan.data import PHANTOM_LABELS, SimpleITKReader, generate_phantom_case, write_phantom_dataset


def test_same_seed_same_case_and_cases_differ() -> None:
    a = generate_phantom_case(3, shape=(48, 48, 20))
    b = generate_phantom_case(3, shape=(48, 48, 20))
    c = generate_phantom_case(4, shape=(48, 48, 20))
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.mri, b.mri) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)


def test_organs_contrasts_and_geometry() -> None:
    case = generate_phantom_case(0)
    assert case.ct.dtype == np.int16 and case.mri.dtype == np.float32 and case.label.dtype == np.uint8
    assert set(np.unique(case.label).tolist()) == set(PHANTOM_LABELS.values())
    liver, spleen = case.label == 1, case.label == 4
    # the liver lies on the patient's right (RAS +x), the spleen on the left
    xs = np.arange(case.label.shape[0])[:, None, None]
    assert (xs * liver).sum() / liver.sum() > case.label.shape[0] / 2 > (xs * spleen).sum() / spleen.sum()
    # CT: liver brighter than fat, air at about -1000 HU; MRI: fat brightest, so the order differs
    fat_ct = np.median(case.ct[(case.ct > -200) & (case.ct < -50)])
    assert np.median(case.ct[liver]) > 30 > fat_ct
    assert np.median(case.ct[0]) < -900
    body = case.mri > np.percentile(case.mri, 99)
    assert np.median(case.mri[body]) > np.median(case.mri[liver]) > np.median(case.mri[spleen])
    # Rician noise: background is positive, not zero
    assert 0 < np.median(case.mri[0]) < 60
    assert case.affine[0, 0] > 0 and case.affine[2, 2] > 0


def test_writes_nifti_and_dicom(tmp_path: Path) -> None:
    lists = write_phantom_dataset(tmp_path / "nii", num_cases=2, seed=0, shape=(40, 40, 16))
    assert [Path(x["image"]).name for x in lists["ct"]] == ["image_1.nii.gz", "image_2.nii.gz"]
    img = nib.load(lists["mri"][0]["image"])
    assert img.shape == (40, 40, 16)
    dcm = write_phantom_dataset(tmp_path / "dcm", 1, 0, ("ct",), "dicom", (40, 40, 16))
    series = LoadImage(reader=SimpleITKReader(), image_only=True)(dcm["ct"][0]["image"])
    nifti = LoadImage(image_only=True)(lists["ct"][0]["image"])
    assert series.shape == nifti.shape
    np.testing.assert_array_equal(series.numpy(), nifti.numpy())
    np.testing.assert_allclose(series.affine.numpy(), nifti.affine.numpy(), atol=1e-3)
    assert not any(p.name.startswith(".") for p in (tmp_path / "dcm" / "ct").iterdir())  # no temporary leftovers


def test_command_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai_semgan.data.phantom",
            "--out",
            str(tmp_path),
            "--cases",
            "2",
            "--seed",
            "1",
            "--modalities",
            "ct",
            "--shape",
            "32",
            "32",
            "16",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        check=True,
    )
    assert "ct: 2 cases" in out.stdout
    assert sorted(p.name for p in (tmp_path / "ct").iterdir()) == [
        "image_1.nii.gz",
        "image_2.nii.gz",
        "label_1.nii.gz",
        "label_2.nii.gz",
    ]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modalities"):
        write_phantom_dataset(tmp_path, 1, modalities=("pet",))
    with pytest.raises(ValueError, match="num_cases"):
        write_phantom_dataset(tmp_path, 0)
    with pytest.raises(ValueError, match="shape"):
        generate_phantom_case(0, shape=(8, 8, 8))
