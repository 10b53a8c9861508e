"""SimpleITKReader on real DICOM and NIfTI files, against MONAI's nibabel reader and the files' own geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.transforms import LoadImage, LoadImaged, Orientation

from monai_semgan.data import SimpleITKReader, list_dicom_series


def test_reads_jpeg2000_ct_series_in_hounsfield_units(shared_data: Path) -> None:
    folder = shared_data / "totalseg" / "example_ct_dicom"
    image = LoadImage(reader=SimpleITKReader(), image_only=True)(folder)
    assert image.shape == (512, 512, 20)
    assert float(image.min()) == -1024.0 and float(image.max()) == 1839.0
    spacing = image.meta["spacing"]
    assert spacing[0] == pytest.approx(0.9766, abs=1e-3) and spacing[2] == pytest.approx(2.0)
    # LPS -> RAS: the first two axes point to -x and -y in RAS for a standard axial series
    assert image.affine[0, 0] < 0 and image.affine[1, 1] < 0
    assert image.meta["space"] == "RAS"


def test_dicom_geometry_matches_its_nifti_label_after_orientation(shared_data: Path) -> None:
    """TotalSegmentator wrote its label from this series: same grid in world space, possibly another axis order."""
    image = LoadImage(reader=SimpleITKReader(), image_only=True, ensure_channel_first=True)(
        shared_data / "totalseg" / "example_ct_dicom"
    )
    label = LoadImage(image_only=True, ensure_channel_first=True)(shared_data / "totalseg" / "example_seg_dicom.nii.gz")
    ras = Orientation("RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))
    image, label = ras(image), ras(label)
    assert image.shape == label.shape
    np.testing.assert_allclose(image.affine.numpy(), label.affine.numpy(), atol=1e-2)
    # the liver (5) lies in soft tissue: its median HU is in the liver's range
    liver_hu = image[label == 5]
    assert liver_hu.numel() > 1000
    assert 20 < float(liver_hu.median()) < 120


def test_nifti_through_simpleitk_equals_nibabel(shared_data: Path) -> None:
    path = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    a = LoadImage(reader=SimpleITKReader(), image_only=True)(path)
    b = LoadImage(reader="NibabelReader", image_only=True)(path)
    assert a.shape == b.shape == (122, 101, 30)
    torch.testing.assert_close(a.float(), b.float())
    np.testing.assert_allclose(a.affine.numpy(), b.affine.numpy(), atol=1e-5)
    mr = shared_data / "totalseg" / "example_mr_sm.nii.gz"  # stored LPS
    np.testing.assert_allclose(
        LoadImage(reader=SimpleITKReader(), image_only=True)(mr).affine.numpy(),
        LoadImage(reader="NibabelReader", image_only=True)(mr).affine.numpy(),
        atol=1e-4,
    )


def test_usable_from_load_imaged_and_with_uneven_slices(shared_data: Path) -> None:
    data = LoadImaged("image", reader=SimpleITKReader())({"image": shared_data / "dicom_samples" / "CT_DICOM"})
    assert data["image"].shape == (16, 16, 4)
    assert str(data["image"].meta["filename_or_obj"]).endswith("CT_DICOM")


def test_folder_with_several_series_is_refused_with_a_listing(tmp_path: Path, shared_data: Path) -> None:
    for uid, name in (("1.2.3.1", "a"), ("1.2.3.2", "b")):
        img = sitk.Image(8, 8, sitk.sitkInt16)
        for k in range(2):
            img.SetMetaData("0020|000e", uid)
            img.SetMetaData("0020|0013", str(k + 1))
            img.SetMetaData("0020|0032", f"0\\0\\{k}")
            img.SetMetaData("0008|0060", "CT")
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            writer.SetFileName(str(tmp_path / f"{name}{k}.dcm"))
            writer.Execute(img)
    assert sorted(list_dicom_series(tmp_path)) == ["1.2.3.1", "1.2.3.2"]
    with pytest.raises(ValueError, match="2 DICOM series.*1.2.3.1.*1.2.3.2"):
        SimpleITKReader().read(tmp_path)
    chosen = SimpleITKReader(series_uid="1.2.3.2")
    array, meta = chosen.get_data(chosen.read(tmp_path))
    assert array.shape == (8, 8, 2)
    with pytest.raises(ValueError, match="no series 9.9"):
        SimpleITKReader(series_uid="9.9").read(tmp_path)


def test_folder_without_dicom_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a scan")
    with pytest.raises(FileNotFoundError, match="no readable DICOM"):
        SimpleITKReader().read(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        SimpleITKReader().read(tmp_path / "missing.nii.gz")


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        SimpleITKReader().read(bad)


def test_same_geometry_as_monai_pydicom_reader(shared_data: Path) -> None:
    pytest.importorskip("pydicom")
    folder = shared_data / "dicom_samples" / "CT_DICOM"  # uncompressed, uneven z spacing
    ours = LoadImage(reader=SimpleITKReader(), image_only=True)(folder)
    theirs = LoadImage(reader="PydicomReader", image_only=True)(folder)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours.float(), theirs.float())
    np.testing.assert_allclose(ours.affine.numpy(), theirs.affine.numpy(), atol=1e-4)
