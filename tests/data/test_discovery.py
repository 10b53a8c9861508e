"""Case discovery for every supported layout, CHAOS conversion, split files, and bad folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from monai.transforms import Compose

from monai_semgan.data import (
    convert_chaos_case,
    discover_cases,
    generate_phantom_case,
    make_slice_dataset,
    split_cases,
    volume_transforms,
    write_split,
)


def _nifti(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)


def test_shared_chaos_pairs(shared_data: Path) -> None:
    cases = discover_cases(shared_data / "chaos_t2spir")
    assert [c["case_id"] for c in cases] == [f"case_{n}" for n in (1, 2, 3, 5, 8, 10, 13, 15, 19, 20)]
    assert all(Path(c["label"]).name == f"label_{c['case_id'][5:]}.nii.gz" for c in cases)


def test_lits_decathlon_and_unlabeled_layouts(tmp_path: Path) -> None:
    vol = np.zeros((4, 4, 4), np.int16)
    for n in (0, 1, 10):
        _nifti(tmp_path / "lits" / f"volume-{n}.nii", vol)
    _nifti(tmp_path / "lits" / "segmentation-0.nii", vol)
    _nifti(tmp_path / "lits" / "segmentation-10.nii", vol)
    lits = discover_cases(tmp_path / "lits")
    assert [c["case_id"] for c in lits] == ["lits_0", "lits_1", "lits_10"]
    assert ["label" in c for c in lits] == [True, False, True]

    for name in ("liver_3.nii.gz", "liver_12.nii.gz"):
        _nifti(tmp_path / "msd" / "imagesTr" / name, vol)
        _nifti(tmp_path / "msd" / "labelsTr" / name, vol)
    _nifti(tmp_path / "msd" / "imagesTs" / "liver_99.nii.gz", vol)
    msd = discover_cases(tmp_path / "msd")
    assert [c["case_id"] for c in msd] == ["liver_3", "liver_12", "liver_99"]
    assert ["label" in c for c in msd] == [True, True, False]

    _nifti(tmp_path / "plain" / "scan_a.nii.gz", vol)
    assert [("label" in c) for c in discover_cases(tmp_path / "plain")] == [False]


def test_datalist_json(tmp_path: Path) -> None:
    vol = np.zeros((4, 4, 4), np.int16)
    _nifti(tmp_path / "a.nii.gz", vol)
    _nifti(tmp_path / "a_seg.nii.gz", vol)
    _nifti(tmp_path / "b.nii.gz", vol)
    datalist = {"training": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}, {"image": "b.nii.gz"}]}
    (tmp_path / "list.json").write_text(json.dumps(datalist))
    cases = discover_cases(tmp_path / "list.json")
    assert [c["case_id"] for c in cases] == ["a", "b"] and "label" in cases[0] and "label" not in cases[1]
    datalist["training"].append({"image": "missing.nii.gz"})
    (tmp_path / "bad.json").write_text(json.dumps(datalist))
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        discover_cases(tmp_path / "bad.json")


def _write_chaos_patient(root: Path, case) -> None:
    """One CHAOS-style T2SPIR patient: DICOM slices whose InstanceNumber runs head-to-feet (the reverse of their
    z position) and PNG masks named in InstanceNumber order, with CHAOS grey values."""
    dicom = root / "T2SPIR" / "DICOM_anon"
    ground = root / "T2SPIR" / "Ground"
    dicom.mkdir(parents=True)
    ground.mkdir(parents=True)
    volume = sitk.GetImageFromArray(np.ascontiguousarray(case.mri.transpose(2, 1, 0)).astype(np.int16))
    volume.SetSpacing((6.0, 6.0, 12.0))
    grey = np.array([0, 63, 126, 189, 252], np.uint8)
    depth = volume.GetDepth()
    for k in range(depth):
        piece = volume[:, :, k]
        instance = depth - k  # head-to-feet numbering
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0020|000e": "1.2.3.4.5",
            "0020|0013": str(instance),
            "0020|0032": "\\".join(f"{p:.3f}" for p in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0008|0060": "MR",
        }.items():
            piece.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(dicom / f"IMG-{k:04d}.dcm"))
        writer.Execute(piece)
        mask = grey[case.label[:, :, k].T]  # (rows = y, cols = x)
        sitk.WriteImage(sitk.GetImageFromArray(mask), str(ground / f"liver_GT_{instance - 1:03d}.png"))


def test_chaos_layout_converts_with_pngs_in_instance_order(tmp_path: Path) -> None:
    case = generate_phantom_case(5, shape=(32, 32, 16), spacing=(6.0, 6.0, 12.0))
    _write_chaos_patient(tmp_path / "CHAOS" / "Train_Sets" / "MR" / "1", case)
    with pytest.raises(ValueError, match="pass cache_dir"):
        discover_cases(tmp_path / "CHAOS")
    cases = discover_cases(tmp_path / "CHAOS", cache_dir=tmp_path / "cache")
    assert [c["case_id"] for c in cases] == ["t2spir_1"]
    data = Compose(volume_transforms("mri", 32, label_key="label", label_values="chaos"))(cases[0])
    # the label sits on the right slices: liver slices in the converted volume are the phantom's liver slices
    converted = (np.asarray(nib.load(cases[0]["label"]).dataobj) == 1).any(axis=(0, 1))
    expected = (case.label == 1).any(axis=(0, 1))
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(converted, expected)
    assert data["label"].shape == (1, 32, 32, 16)
    # a mask count that does not match the slices is refused, naming the folder
    ground = tmp_path / "CHAOS" / "Train_Sets" / "MR" / "1" / "T2SPIR" / "Ground"
    next(ground.iterdir()).unlink()
    with pytest.raises(ValueError, match="15 PNG masks for 16 DICOM slices"):
        convert_chaos_case(ground.parent / "DICOM_anon", ground, tmp_path / "cache2", "x")


def test_split_file_is_written_atomically(phantom_dir: Path, tmp_path: Path) -> None:
    cases = discover_cases(phantom_dir / "ct")
    labeled, unlabeled = split_cases(cases, 1, seed=7)
    path = write_split(tmp_path / "run", labeled, unlabeled, 1, 7, phantom_dir / "ct")
    saved = json.loads(path.read_text())
    assert saved["seed"] == 7 and saved["labeled"] == labeled and saved["unlabeled"] == unlabeled
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["split.json"]


def test_missing_empty_and_unknown_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_cases(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        discover_cases(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no known data layout"):
        discover_cases(tmp_path / "odd")


def test_truncated_nifti_fails_naming_the_file(phantom_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(phantom_dir / "ct", folder)
    image = folder / "image_2.nii.gz"
    image.write_bytes(image.read_bytes()[:2000])
    before = sorted(p.name for p in folder.iterdir())
    cases = discover_cases(folder)
    with pytest.raises(Exception, match="image_2.nii.gz") as info:
        make_slice_dataset(cases, "ct", 32, labeled=True, label_values="chaos")
    assert "image_2.nii.gz" in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written, nothing removed
