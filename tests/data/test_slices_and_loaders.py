"""3-D to 2-D slices and the cached slice loaders, on real scans and phantom data."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_semgan.data import (
    RandAxialSliced,
    axial_slices,
    discover_cases,
    make_slice_dataset,
    make_slice_loader,
    split_cases,
    stack_slices,
    volume_transforms,
)


def test_round_trip_reproduces_the_label_volume(shared_data: Path) -> None:
    case = {
        "image": str(shared_data / "chaos_t2spir/image_2.nii.gz"),
        "label": str(shared_data / "chaos_t2spir/label_2.nii.gz"),
    }
    # at the native in-plane size (256) resizing is the identity, so slicing and stacking must be exact
    data = Compose(volume_transforms("mri", 256, label_key="label", label_values="chaos"))(case)
    label = data["label"]
    slices = axial_slices(label)
    assert len(slices) == label.shape[-1] and slices[0].shape == label.shape[:3]
    assert torch.equal(stack_slices(slices), torch.as_tensor(label))
    raw = torch.as_tensor(np.asarray(nib.load(case["label"]).dataobj))
    # CHAOS is stored LAS: RAS flips the first axis; liver (1) voxels are all kept
    assert int((label == 1).sum()) == int((raw == 1).sum())


def test_volume_pipeline_on_real_ct_and_mri(shared_data: Path) -> None:
    ct = Compose(volume_transforms("ct", 64, label_key="label", label_values="totalseg"))(
        {
            "image": str(shared_data / "totalseg/example_ct_sm.nii.gz"),
            "label": str(shared_data / "totalseg/example_seg.nii.gz"),
        }
    )
    assert ct["image"].shape == (1, 64, 64, 30) and ct["label"].shape == (1, 64, 64, 30)
    assert ct["image"].dtype == torch.float32 and float(ct["image"].min()) >= -1 and float(ct["image"].max()) <= 1
    assert sorted(torch.unique(ct["label"]).tolist()) == [0, 1]
    mri = Compose(volume_transforms("mri", 64))({"image": str(shared_data / "chaos_t2spir/image_3.nii.gz")})
    assert mri["image"].shape[:3] == (1, 64, 64)


def test_labeled_sampling_prefers_organ_slices() -> None:
    label = torch.zeros(1, 8, 8, 40, dtype=torch.uint8)
    label[..., 30:34] = 1  # 4 of 40 slices hold the organ
    image = torch.zeros(1, 8, 8, 40)
    sampler = RandAxialSliced(["image", "label"], num_samples=400, fg_ratio=0.75)
    sampler.set_random_state(0)
    picks = [s["slice_index"] for s in sampler({"image": image, "label": label})]
    organ_share = np.mean([30 <= p < 34 for p in picks])
    assert 0.7 < organ_share < 0.85  # 0.75 + 0.25 * 4 / 40
    assert sampler({"image": image, "label": label})[0]["image"].shape == (1, 8, 8)


def test_unlabeled_sampling_skips_air_slices() -> None:
    image = torch.full((1, 8, 8, 20), -1.0)
    image[..., 5:9] = 0.2  # body only in slices 5..8
    sampler = RandAxialSliced("image", label_key=None, num_samples=200)
    sampler.set_random_state(1)
    picks = {s["slice_index"] for s in sampler({"image": image})}
    assert picks == {5, 6, 7, 8}


def test_loaders_deliver_batches_of_slices(phantom_dir: Path, tmp_path: Path) -> None:
    cases = discover_cases(phantom_dir / "ct")
    labeled, unlabeled = split_cases(cases, num_labeled=1, seed=0)
    assert len(labeled) == 1 and len(unlabeled) == 2 and all("label" not in c for c in unlabeled)
    lab = make_slice_loader(
        make_slice_dataset(labeled, "ct", 32, labeled=True, label_values="chaos", slices_per_volume=6), 4
    )
    unl = make_slice_loader(make_slice_dataset(unlabeled, "ct", 32, labeled=False, slices_per_volume=4), 4)
    batches = list(lab)
    assert len(batches) == 1  # 6 slices, batch 4, last incomplete batch dropped
    assert batches[0]["image"].shape == (4, 1, 32, 32) and batches[0]["label"].shape == (4, 1, 32, 32)
    assert set(torch.unique(batches[0]["label"]).tolist()) <= {0, 1}
    unl_batches = list(unl)
    assert len(unl_batches) == 2 and "label" not in unl_batches[0]
    # the same seed gives the same slices
    again = make_slice_loader(
        make_slice_dataset(labeled, "ct", 32, labeled=True, label_values="chaos", slices_per_volume=6), 4
    )
    assert torch.equal(next(iter(again))["slice_index"], batches[0]["slice_index"])


def test_split_is_reproducible_and_checked(phantom_dir: Path) -> None:
    cases = discover_cases(phantom_dir / "mri")
    assert split_cases(cases, 2, seed=3) == split_cases(cases, 2, seed=3)
    assert len(split_cases(cases, -1)[0]) == 3
    with pytest.raises(ValueError, match="num_labeled=4 but only 3"):
        split_cases(cases, 4)
    with pytest.raises(ValueError, match="no labeled cases"):
        make_slice_dataset([], "ct", 32, labeled=True)
    with pytest.raises(ValueError, match="without a label"):
        make_slice_dataset([{"image": cases[0]["image"], "case_id": "x"}], "ct", 32, labeled=True)
    json.dumps(split_cases(cases, 1))  # the split is plain data that can be written to the output folder


def test_slices_go_back_to_the_input_grid(shared_data: Path) -> None:
    """Everything needed to put 2-D results back is kept: Invertd undoes resize, square padding and orientation."""
    from monai.transforms import Invertd

    case = {
        "image": str(shared_data / "totalseg/example_ct_sm.nii.gz"),
        "label": str(shared_data / "totalseg/example_seg.nii.gz"),
    }
    transforms = Compose(volume_transforms("ct", 64, label_key="label", label_values="totalseg"))
    data = transforms(case)
    assert data["label"].shape == (1, 64, 64, 30)
    # a "prediction" made slice by slice at the generator's resolution, stacked back
    data["pred"] = stack_slices(axial_slices(data["label"].float())).as_subclass(type(data["label"]))
    data["pred"].meta = data["label"].meta
    data["pred"].applied_operations = data["label"].applied_operations
    inverted = Invertd("pred", transform=transforms, orig_keys="label", nearest_interp=True)(data)["pred"]
    original = torch.as_tensor(np.asarray(nib.load(case["label"]).dataobj)) == 5
    assert inverted.shape[1:] == original.shape
    np.testing.assert_allclose(inverted.affine.numpy(), nib.load(case["label"]).affine, atol=1e-4)
    overlap = (inverted[0].bool() & original).sum() * 2 / (inverted[0].bool().sum() + original.sum())
    assert float(overlap) > 0.85  # 122 x 101 -> 64 x 64 -> back by nearest neighbour loses boundary voxels


def test_loaders_read_dicom_series_folders(tmp_path: Path) -> None:
    """Cases whose images are DICOM series folders go through the same loaders (SimpleITK picked per path)."""
    from monai_semgan.data import write_phantom_dataset

    lists = write_phantom_dataset(tmp_path, 2, 0, ("ct",), "dicom", (32, 32, 16), (12.0, 12.0, 24.0))
    cases = discover_cases(tmp_path / "ct")
    assert [Path(c["image"]).is_dir() for c in cases] == [True, True]
    assert [c["image"] for c in cases] == [x["image"] for x in lists["ct"]]
    batch = next(iter(make_slice_loader(make_slice_dataset(cases, "ct", 16, True, label_values="chaos"), 4)))
    assert batch["image"].shape == (4, 1, 16, 16) and float(batch["image"].min()) >= -1.0
    assert set(torch.unique(batch["label"]).tolist()) <= {0, 1}


def test_affine_augmentation_moves_image_and_label_together(shared_data: Path) -> None:
    case = [{"image": str(shared_data / "chaos_t2spir" / f"image_{n}.nii.gz"),
             "label": str(shared_data / "chaos_t2spir" / f"label_{n}.nii.gz")} for n in (1,)]  # fmt: skip
    plain = make_slice_dataset(case, "mri", 64, True, slices_per_volume=24, flip_prob=0.0, label_values="chaos")
    moved = make_slice_dataset(
        case, "mri", 64, True, slices_per_volume=24, flip_prob=0.0, affine_prob=1.0, label_values="chaos"
    )
    plain.volumes.transform.set_random_state(3)
    moved.volumes.transform.set_random_state(3)
    changed = 0
    for i in range(24):
        a, b = plain[i], moved[i]
        assert b["image"].shape == (1, 64, 64) and set(torch.unique(b["label"]).tolist()) <= {0.0, 1.0}
        changed += int(not torch.equal(a["image"], b["image"]))
        if a["label"].sum() > 30 and b["label"].sum() > 30:
            # the liver's mean intensity is kept: the label still covers the liver after the transform
            liver_a = a["image"][a["label"] > 0].mean()
            liver_b = b["image"][b["label"] > 0].mean()
            assert abs(float(liver_a - liver_b)) < 0.15
            assert 0.7 < float(b["label"].sum() / a["label"].sum()) < 1.4  # scaling by at most 10 % per axis
    assert changed >= 20


def test_slices_keep_laterality_unless_flips_are_asked_for(shared_data: Path) -> None:
    # CHAOS case 1 (stored LAS): after RAS orientation x grows towards the patient's right, where the liver is
    case = [{"image": str(shared_data / "chaos_t2spir" / "image_1.nii.gz"),
             "label": str(shared_data / "chaos_t2spir" / "label_1.nii.gz")}]  # fmt: skip

    def right_share(flip_prob: float | None) -> float:
        kwargs = {} if flip_prob is None else {"flip_prob": flip_prob}
        ds = make_slice_dataset(
            case, "mri", 64, True, slices_per_volume=16, fg_ratio=1.0, label_values="chaos", **kwargs
        )
        ds.volumes.transform.set_random_state(0)
        label = torch.stack([ds[i]["label"] for i in range(16)])
        return float(label[..., 32:, :].sum() / label.sum())

    assert right_share(None) > 0.9  # the default: no flips
    assert right_share(1.0) < 0.1  # every slice mirrored, image and label together
