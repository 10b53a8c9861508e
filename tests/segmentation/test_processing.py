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
"""Volume pre/post-processing around slice-wise segmentation, on real scans and files the tests write: inputs found
under a path, the axial and constant-image checks, the round trip back onto the input grid, atomic writes, Dice."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import decollate_batch, list_data_collate
from monai.transforms import EnsureChannelFirstd

from monai_semgan.data import CheckAxialSlicesd, LoadVolumed, volume_preprocessing, write_phantom_dataset
from monai_semgan.segmentation import (
    AtomicNibabelWriter,
    DiceReport,
    case_name,
    check_writable_folder,
    is_project_output,
    labeled_volumes,
    list_volumes,
    segmentation_postprocessing,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(out, num_cases=2, seed=3, modalities=("mri",), shape=(48, 40, 16), spacing=(8, 8, 16))
    return out / "mri"


def test_list_volumes_file_folder_and_dicom(phantom: Path, tmp_path: Path) -> None:
    assert list_volumes(phantom / "image_1.nii.gz") == [{"image": str(phantom / "image_1.nii.gz")}]
    names = [Path(d["image"]).name for d in list_volumes(phantom)]
    assert names == ["image_1.nii.gz", "image_2.nii.gz", "label_1.nii.gz", "label_2.nii.gz"]
    with pytest.raises(FileNotFoundError, match="nope"):
        list_volumes(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no NIfTI file or DICOM series"):
        list_volumes(tmp_path)
    with pytest.raises(ValueError, match="expected a NIfTI file"):
        list_volumes(tmp_path / "notes.txt")
    series = SHARED / "totalseg" / "example_ct_dicom"
    if series.is_dir():
        assert list_volumes(series) == [{"image": str(series)}]
        mixed = tmp_path / "mixed"
        mixed.mkdir()
        shutil.copytree(series, mixed / "ct_series")
        shutil.copy(phantom / "image_1.nii.gz", mixed / "a.nii.gz")
        assert [Path(d["image"]).name for d in list_volumes(mixed)] == ["a.nii.gz", "ct_series"]


def test_labeled_volumes(phantom: Path, tmp_path: Path) -> None:
    cases = labeled_volumes(phantom)
    assert [Path(c["label"]).name for c in cases] == ["label_1.nii.gz", "label_2.nii.gz"]
    only_images = tmp_path / "images"
    only_images.mkdir()
    shutil.copy(phantom / "image_1.nii.gz", only_images / "image_1.nii.gz")
    with pytest.raises(ValueError, match="no labeled case"):
        labeled_volumes(only_images)


def test_labeled_volumes_names_the_images_without_a_label(
    phantom: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom, data)
    (data / "label_2.nii.gz").unlink()
    with caplog.at_level("WARNING", logger="monai_semgan.segmentation.processing"):
        cases = labeled_volumes(data)
    assert [Path(c["image"]).name for c in cases] == ["image_1.nii.gz"]
    assert f"1 image(s) without a label file, not scored: {data / 'image_2.nii.gz'}" in caplog.text


def _writable_in_child(folder: Path, queue) -> None:
    import os

    if os.geteuid() == 0:  # root writes anywhere: check as an ordinary user, as the user who meets this would be
        os.setgid(65534)
        os.setuid(65534)
    try:
        check_writable_folder(folder / "out")
        queue.put("")
    except Exception as err:
        queue.put(f"{type(err).__name__}: {err}")


def test_an_output_folder_that_cannot_be_written_is_refused_by_name(tmp_path: Path) -> None:
    import multiprocessing
    import os

    check_writable_folder(tmp_path / "new" / "deeper")  # created later: its first existing parent is writable
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=f"{blocker}: is a file, so output_dir {blocker}/out cannot be a folder"):
        check_writable_folder(blocker / "out")

    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    # an ordinary user may look into the test folder (pytest's folders are private), for the time of the check
    opened = {p: p.stat().st_mode for p in [tmp_path, *tmp_path.parents] if p.stat().st_uid == os.geteuid()}
    try:
        for path, mode in opened.items():
            os.chmod(path, mode | 0o005)
        queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_writable_in_child, args=(locked, queue))
        child.start()
        child.join(60)
        reported = queue.get(timeout=5)
    finally:
        for path, mode in opened.items():
            os.chmod(path, mode)
    assert reported == (
        f"PermissionError: {locked}: not writable (where {locked / 'out'} would be created); choose another output_dir."
    )


def _check_axial(path: Path) -> None:
    transform = [LoadVolumed("image"), EnsureChannelFirstd("image"), CheckAxialSlicesd("image")]
    data = {"image": str(path)}
    for t in transform:
        data = t(data)


def test_axial_check_accepts_real_scans() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not available")
    for path in [
        SHARED / "chaos_t2spir" / "image_1.nii.gz",  # LAS, 1.25 x 1.25 x 7.7 mm
        SHARED / "totalseg" / "example_ct.nii.gz",  # 3 mm isotropic
        SHARED / "totalseg" / "example_mr_sm.nii.gz",  # LPS
        SHARED / "totalseg" / "example_ct_dicom",
    ]:
        _check_axial(path)


@pytest.mark.parametrize(
    "shape, affine, message",
    [
        ((8, 64, 64), np.eye(4), "aspect 8.0"),
        ((12, 64, 64), np.diag([5.0, 1.0, 1.0, 1.0]), "coarsest spacing"),
        # coronal acquisition: the coarse axis maps to anterior-posterior
        ((64, 12, 64), np.diag([1.0, 5.0, 1.0, 1.0]), "coarsest spacing"),
    ],
)
def test_axial_check_rejects(tmp_path: Path, shape, affine, message) -> None:
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random(shape).astype(np.float32), affine), str(path))
    with pytest.raises(ValueError, match=message) as err:
        _check_axial(path)
    assert str(path) in str(err.value) and "not axial" in str(err.value)


def test_axial_check_follows_the_affine_not_the_array_order(tmp_path: Path) -> None:
    # the same slice-first array is fine when its affine says the first voxel axis is superior
    affine = np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [5.0, 0, 0, 0], [0, 0, 0, 1]])
    path = tmp_path / "slice_first.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((12, 64, 64)).astype(np.float32), affine), str(path))
    _check_axial(path)


def test_preprocessing_rejects_a_constant_image(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 8), np.float32), np.eye(4)), str(path))
    with pytest.raises(RuntimeError) as err:
        volume_preprocessing("mri", 16)({"image": str(path)})
    assert "constant image" in repr(err.value.__cause__) and str(path) in repr(err.value.__cause__)


def test_round_trip_restores_the_input_grid(tmp_path: Path) -> None:
    """An identity 'network' (the image itself as the probability) mapped back must land on the input's grid: the
    mask of a thresholded input equals the input thresholded directly, except near edges blurred by resizing."""
    rng = np.random.default_rng(1)
    data = np.zeros((50, 36, 10), np.float32)
    data[10:30, 8:28, 2:8] = 1000.0
    data += rng.normal(0, 5, data.shape).astype(np.float32)
    affine = np.array([[-1.5, 0, 0, 20.0], [0, 1.5, 0, -7.0], [0, 0, 4.0, 3.0], [0, 0, 0, 1]])  # LAS
    source = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(source))
    pre = volume_preprocessing("mri", 32)
    item = pre({"image": str(source)})
    assert tuple(item["image"].shape) == (1, 32, 32, 10)
    # logits whose sigmoid is ~1 on the bright block, ~0 elsewhere
    batch = list_data_collate([item])  # as the DataLoader batches it
    batch["pred"] = batch["image"] * 20  # a MetaTensor, as a network called on the batch returns
    out = tmp_path / "out"
    post = segmentation_postprocessing(pre, out, save_probabilities=True)
    result = post(decollate_batch(batch)[0])
    mask = nib.load(out / "in_seg.nii.gz")
    assert mask.shape == data.shape
    np.testing.assert_allclose(mask.affine, affine, atol=1e-6)
    got = np.asarray(mask.dataobj).astype(bool)
    want = data > 500
    dice = 2 * (got & want).sum() / (got.sum() + want.sum())
    assert dice > 0.9
    assert result["pred"].shape[1:] == data.shape
    assert (out / "in_prob.nii.gz").exists()
    assert sorted(p.name for p in out.iterdir()) == ["in_prob.nii.gz", "in_seg.nii.gz"]
    # both are marked as the project's, so a later run recognises them and never segments them as input
    assert is_project_output(out / "in_seg.nii.gz") and is_project_output(out / "in_prob.nii.gz")
    assert not is_project_output(source)
    shutil.copy(source, out / "in.nii.gz")
    assert [Path(d["image"]).name for d in list_volumes(out)] == ["in.nii.gz"]
    with pytest.raises(ValueError, match="a mask written by monai-semgan"):
        list_volumes(out / "in_seg.nii.gz")
    # writing into the input folder again replaces only the project's own masks
    assert list_volumes(out, output_dir=out) == [{"image": str(out / "in.nii.gz")}]


def test_outputs_that_would_replace_inputs_or_each_other_are_refused_first(phantom: Path, tmp_path: Path) -> None:
    same = tmp_path / "same"
    same.mkdir()
    shutil.copy(phantom / "image_1.nii.gz", same / "a.nii.gz")
    shutil.copy(phantom / "image_2.nii.gz", same / "a_seg.nii.gz")  # a real image whose name looks like a mask
    before = (same / "a_seg.nii.gz").read_bytes()
    with pytest.raises(ValueError, match=r"a_seg.nii.gz: the output of .*a.nii.gz would overwrite an input"):
        list_volumes(same, output_dir=same)
    assert (same / "a_seg.nii.gz").read_bytes() == before and sorted(p.name for p in same.iterdir()) == [
        "a.nii.gz",
        "a_seg.nii.gz",
    ]
    stems = tmp_path / "stems"
    stems.mkdir()
    shutil.copy(phantom / "image_1.nii.gz", stems / "b.nii.gz")
    nib.save(nib.load(str(phantom / "image_2.nii.gz")), str(stems / "b.nii"))
    with pytest.raises(ValueError, match=r"b.nii.* and .*b.nii.gz would both be written to .*b_seg.nii.gz"):
        list_volumes(stems, output_dir=tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(phantom / "image_1.nii.gz", foreign / "image_1_seg.nii.gz")  # a file the project did not write
    with pytest.raises(ValueError, match="image_1_seg.nii.gz: exists and was not written by monai-semgan"):
        labeled_volumes(phantom, output_dir=foreign)
    assert len(labeled_volumes(phantom, output_dir=tmp_path / "fresh")) == 2


def test_atomic_writer_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    source = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(source))
    before = source.read_bytes()
    writer = AtomicNibabelWriter()
    image = LoadVolumed("image")({"image": str(source)})["image"]
    writer.set_data_array(image, channel_dim=None)
    writer.set_metadata(image.meta)
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        writer.write(str(source))
    assert source.read_bytes() == before
    writer.write(str(tmp_path / "copy.nii.gz"))
    assert nib.load(tmp_path / "copy.nii.gz").shape == (4, 4, 4)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dice_report_table_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from monai.data import MetaTensor

    def item(name: str, pred: np.ndarray, label: np.ndarray) -> dict:
        meta = {"filename_or_obj": f"/data/{name}.nii.gz"}
        return {
            "pred": MetaTensor(torch.as_tensor(pred)[None], meta=meta),
            "label": MetaTensor(torch.as_tensor(label)[None], affine=torch.diag(torch.tensor([2.0, 2.0, 5.0, 1.0]))),
        }

    a = np.zeros((8, 8, 4), np.float32)
    a[2:6, 2:6, 1:3] = 1
    b = np.zeros_like(a)
    b[2:6, 2:4, 1:3] = 1  # half of a: Dice 2/3
    outputs = [[item("image_1", a, a)], [item("image_2", b, a)], [item("image_3", np.zeros_like(a), a)]]
    engine = Engine(lambda e, batch: batch)
    report = DiceReport(tmp_path / "dice.csv")
    report.attach(engine)
    engine.run(outputs, max_epochs=1)
    rows = list(csv.DictReader((tmp_path / "dice.csv").open()))
    assert [r["case"] for r in rows] == ["image_1", "image_2", "image_3", "mean", "std"]
    assert [float(r["dice"]) for r in rows[:3]] == pytest.approx([1.0, 2 / 3, 0.0], abs=1e-4)
    assert float(rows[3]["dice"]) == pytest.approx(5 / 9, abs=1e-4)
    assert float(rows[0]["hd95_mm"]) == 0.0 and rows[2]["hd95_mm"] == ""
    assert engine.state.metrics["mean_dice"] == pytest.approx(5 / 9, abs=1e-4)
    printed = capsys.readouterr().out
    assert "image_2" in printed and "0.6667" in printed and "(std 0.4157, 3 of 3 cases scored)" in printed


def test_dice_report_leaves_an_empty_reference_out_of_the_mean_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    from monai.data import MetaTensor

    def item(name: str, pred: np.ndarray, label: np.ndarray) -> dict:
        meta = {"filename_or_obj": f"/data/{name}.nii.gz"}
        return {"pred": MetaTensor(torch.as_tensor(pred)[None], meta=meta), "label": torch.as_tensor(label)[None]}

    a = np.zeros((8, 8, 4), np.float32)
    a[2:6, 2:6, 1:3] = 1
    outputs = [[item("image_1", a, np.zeros_like(a))], [item("image_2", a, a)]]
    engine = Engine(lambda e, batch: batch)
    DiceReport(tmp_path / "dice.csv").attach(engine)
    with caplog.at_level("WARNING", logger="monai_semgan.segmentation.dice_report"):
        engine.run(outputs, max_epochs=1)
    assert "image_1: the reference has no voxel of the structure (check label_values)" in caplog.text
    rows = {r["case"]: r for r in csv.DictReader((tmp_path / "dice.csv").open())}
    assert rows["image_1"]["dice"] == "" and float(rows["mean"]["dice"]) == 1.0
    assert engine.state.metrics["mean_dice"] == 1.0 and engine.state.metrics["cases_scored"] == 1
    printed = capsys.readouterr().out
    assert "empty reference" in printed and "1 of 2 cases scored; 1 with an empty reference left out" in printed

    engine = Engine(lambda e, batch: batch)
    DiceReport(tmp_path / "none.csv").attach(engine)
    with caplog.at_level("WARNING", logger="monai_semgan.segmentation.dice_report"):
        engine.run(outputs[:1], max_epochs=1)
    assert "no case was scored" in caplog.text and engine.state.metrics["cases_scored"] == 0


def test_case_name() -> None:
    from monai.data import MetaTensor

    assert case_name(MetaTensor(torch.zeros(1), meta={"filename_or_obj": "/a/b/image_3.nii.gz"})) == "image_3"
    assert case_name(MetaTensor(torch.zeros(1), meta={"filename_or_obj": "/a/series_dir"})) == "series_dir"


def test_postprocessing_keeps_the_largest_component(tmp_path: Path) -> None:
    data = np.zeros((32, 32, 8), np.float32)
    data[4:20, 4:20, 1:7] = 1000.0  # the organ
    data[26:29, 26:29, 3:5] = 1000.0  # a small false positive, far away
    data += np.random.default_rng(2).normal(0, 1, data.shape).astype(np.float32)
    source = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(source))
    pre = volume_preprocessing("mri", 32)
    for keep, name in ((True, "kept"), (False, "all")):
        batch = list_data_collate([pre({"image": str(source)})])
        batch["pred"] = batch["image"] * 20
        segmentation_postprocessing(pre, tmp_path / name, keep_largest_component=keep)(decollate_batch(batch)[0])
    kept = np.asarray(nib.load(tmp_path / "kept" / "two_seg.nii.gz").dataobj)
    every = np.asarray(nib.load(tmp_path / "all" / "two_seg.nii.gz").dataobj)
    assert every[26:29, 26:29, 3:5].any() and not kept[26:29, 26:29, 3:5].any()
    np.testing.assert_array_equal(kept[:22, :22], every[:22, :22])
