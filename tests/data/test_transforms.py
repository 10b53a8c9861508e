"""Intensity windows, label remapping and volume checks, on real scans and on files the tests write."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_semgan.data import CheckVolumed, CTWindowd, MRIPercentileNormalized, RemapLabelsd, parse_label_values


def load(paths: dict[str, Path]) -> dict:
    keys = list(paths)
    return Compose([LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys)])(
        {k: str(v) for k, v in paths.items()}
    )


def test_ct_window_maps_hounsfield_units_to_unit_range(shared_data: Path) -> None:
    data = load({"image": shared_data / "totalseg" / "example_ct_sm.nii.gz"})
    hu = data["image"].clone()
    out = CTWindowd("image")(data)["image"]
    assert float(out.min()) == -1.0 and float(out.max()) == 1.0
    # 50 HU (window centre) -> 0, -150 -> -1, 250 -> 1, linear in between
    inside = (hu > -150) & (hu < 250)
    torch.testing.assert_close(out[inside], (hu[inside].float() - 50) / 200)
    narrow = CTWindowd("image", level=30, width=150)(load({"image": shared_data / "totalseg" / "example_ct_sm.nii.gz"}))
    assert float((narrow["image"] == 1).float().mean()) > float((out == 1).float().mean())
    with pytest.raises(ValueError, match="width"):
        CTWindowd("image", width=0)


def test_mri_percentiles(shared_data: Path) -> None:
    data = load({"image": shared_data / "chaos_t2spir" / "image_1.nii.gz"})
    raw = data["image"].clone().float()
    out = MRIPercentileNormalized("image")(data)["image"]
    assert float(out.min()) == -1.0 and float(out.max()) == 1.0
    lo, hi = np.percentile(raw.numpy(), [0.5, 99.5])
    assert float((out == 1).float().mean()) == pytest.approx(float((raw >= hi).float().mean()), abs=1e-3)
    mid = (raw > lo) & (raw < hi)
    torch.testing.assert_close(out[mid], ((raw[mid] - lo) / (hi - lo) * 2 - 1).float(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="percentiles"):
        MRIPercentileNormalized("image", lower=60, upper=40)


@pytest.mark.parametrize(
    "label_file, mapping, liver_value",
    [("chaos_t2spir/label_1.nii.gz", "chaos", 1), ("totalseg/example_seg.nii.gz", "totalseg", 5)],
)
def test_liver_remapped_to_one(shared_data: Path, label_file: str, mapping: str, liver_value: int) -> None:
    data = load({"label": shared_data / label_file})
    raw = data["label"].clone()
    out = RemapLabelsd("label", mapping, others=0)(data)["label"]
    assert sorted(torch.unique(out).tolist()) == [0, 1]
    assert torch.equal(out.bool(), raw == liver_value)
    assert out.affine is not None  # metadata kept


def test_values_outside_the_mapping_are_refused_with_the_file_name(shared_data: Path) -> None:
    data = load({"label": shared_data / "totalseg" / "example_seg.nii.gz"})
    with pytest.raises(ValueError, match=r"example_seg.nii.gz: label values \[1, 2"):
        RemapLabelsd("label", {0: 0, 5: 1}, others=None)(data)
    with pytest.raises(ValueError, match="label_values 'acdc'"):
        RemapLabelsd("label", "acdc")
    with pytest.raises(ValueError, match="must lie in"):
        RemapLabelsd("label", {5: 3}, num_classes=2)


def test_lits_tumour_counts_as_liver() -> None:
    label = torch.tensor([[[[0, 1, 2]]]], dtype=torch.float32)
    out = RemapLabelsd("label", "lits")({"label": label})["label"]
    assert out.flatten().tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (6, {6: 1}),
        ("6", {6: 1}),
        ([1, 6], {1: 1, 6: 1}),
        ("[1, 6]", {1: 1, 6: 1}),
        ("1,6", {1: 1, 6: 1}),
        ({"6": 1}, {6: 1}),
        ('{"6": 1, "2": 2}', {6: 1, 2: 2}),
        ("btcv", {6: 1}),
        ("BTCV", {6: 1}),
        ("totalseg", {5: 1}),
        ("chaos", {1: 1}),
        ("lits", {1: 1, 2: 1}),
    ],
)
def test_label_values_accept_a_value_a_list_a_mapping_or_a_name(spec: object, expected: dict) -> None:
    assert parse_label_values(spec) == expected


@pytest.mark.parametrize("spec", ["liver", 1.5, [], True, "x,y", [1, "a"]])
def test_bad_label_values_are_refused_with_the_accepted_forms(spec: object) -> None:
    with pytest.raises(ValueError, match="label_values"):
        parse_label_values(spec)


def test_btcv_liver_on_a_real_label(shared_data: Path) -> None:
    path = shared_data / "btcv_ct" / "label_0.nii.gz"
    if not path.exists():
        pytest.skip("no BTCV labels in ../shared/data")
    data = load({"label": path})
    raw = data["label"].clone()
    out = RemapLabelsd("label", 6)(data)["label"]
    assert torch.equal(out.bool(), raw == 6) and int(out.sum()) > 0


def _write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path


def test_bad_volumes_are_refused_by_name(tmp_path: Path) -> None:
    good = _write(tmp_path / "image.nii.gz", np.random.rand(8, 8, 6).astype(np.float32))
    check = CheckVolumed("image", label_keys="label")
    cases = {
        "flat.nii.gz": (np.random.rand(8, 8).astype(np.float32), "2 spatial axes"),
        "four_d.nii.gz": (np.random.rand(8, 8, 6, 3).astype(np.float32), "one channel"),
    }
    for name, (array, message) in cases.items():
        with pytest.raises(ValueError, match=f"{name}.*{message}|{message}"):
            check(load({"image": _write(tmp_path / name, array)}))
    nan = np.random.rand(8, 8, 6).astype(np.float32)
    nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="nan.nii.gz: image holds NaN"):
        check(load({"image": _write(tmp_path / "nan.nii.gz", nan)}))
    inf = np.random.rand(8, 8, 6).astype(np.float32)
    inf[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="inf.nii.gz: image holds NaN or infinite"):
        check(load({"image": _write(tmp_path / "inf.nii.gz", inf)}))
    other_shape = _write(tmp_path / "label_shape.nii.gz", np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="label_shape.nii.gz: label shape"):
        check(load({"image": good, "label": other_shape}))
    shifted = np.eye(4)
    shifted[0, 3] = 10.0
    other_affine = _write(tmp_path / "label_affine.nii.gz", np.zeros((8, 8, 6), np.uint8), shifted)
    with pytest.raises(ValueError, match="label_affine.nii.gz: label affine differs"):
        check(load({"image": good, "label": other_affine}))
    # a matching pair passes untouched
    ok = load({"image": good, "label": _write(tmp_path / "label.nii.gz", np.zeros((8, 8, 6), np.uint8))})
    assert check(ok)["image"] is ok["image"]
