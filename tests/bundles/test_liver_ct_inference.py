"""The encoder, inference and evaluation commands of the liver_ct bundle, run for real on a tiny model trained in the
fixture: `run training` with train_encoder.json, `run inference` on NIfTI files, folders and DICOM series, `run
evaluating` with dice.csv, `ckpt_export` to TorchScript, and the bad inputs that must fail with nothing written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"
CONFIGS = BUNDLE / "configs"


def overlay(*names: str) -> str:
    """``--config_file`` for bundle configs merged in order (MONAI's list syntax)."""
    return "[" + ", ".join(f"'{CONFIGS / name}'" for name in names) + "]"


SHARED = ROOT.parent / "shared" / "data"

# every test runs bundle commands in subprocesses (and the session's tiny model is trained by them)
pytestmark = pytest.mark.slow


@pytest.fixture
def trained(tiny_model: dict) -> dict:
    """The session's tiny model (tests/conftest.py): GAN 2 iterations, encoder 4, through the bundle commands."""
    return tiny_model


@pytest.fixture
def phantom(tiny_model: dict) -> Path:
    return tiny_model["phantom"]


def infer(trained: dict[str, Path], input_path: Path | str, output_dir: Path, *extra: str, check: bool = True):
    return trained["run"](
        "run", "inference", "--config_file", str(CONFIGS / "inference.json"), "--input", str(input_path),
        "--output_dir", str(output_dir), "--model_path", str(trained["model"]), *extra, check=check,
    )  # fmt: skip


def test_encoder_training_writes_model_checkpoints_samples_and_resumes(trained: dict[str, Path]) -> None:
    enc = trained["encoder"]
    assert "Encoder training finished: 4 iterations" in trained["log"]
    model = torch.load(trained["model"], weights_only=True)
    assert model["format"] == "monai_semgan.model" and model["format_version"] == 1
    state = model["state_dict"]
    assert any(k.startswith("encoder.") for k in state) and any(k.startswith("generator.") for k in state)
    # the exported generator is the GAN's, untouched by encoder training, and the file says how to build both
    gan = torch.load(trained["gan"] / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(gan["state_dict"][k], state[f"generator.{k}"]) for k in gan["state_dict"])
    assert model["architecture"]["args"]["generator"] == gan["architecture"]
    assert model["architecture"]["args"]["encoder"]["args"]["resolution"] == 16
    assert model["metadata"] == {"resolution": 16, "encoder_iterations": 4, "gan": gan["metadata"]}
    assert gan["metadata"]["iterations"] == 2 and len(gan["metadata"]["labeled_cases"]) == 1
    assert (enc / "checkpoints" / "checkpoint_4.pt").exists()
    assert sorted(p.name for p in (enc / "samples").glob("recon_*.png"))
    assert any((enc / "tensorboard").iterdir())
    encoder_before = {k: v for k, v in state.items() if k.startswith("encoder.")}
    proc = trained["run"](
        "run", "training", "--config_file", overlay("train.json", "train_encoder.json"),
        "--gan_dir", str(trained["gan"]), "--output_dir", str(enc), "--iterations", "6", *trained["train"],
    )  # fmt: skip
    assert "resumed from" in proc.stdout + proc.stderr and "checkpoint_4.pt" in proc.stdout + proc.stderr
    assert (enc / "checkpoints" / "checkpoint_6.pt").exists()
    after = torch.load(trained["model"], weights_only=True)["state_dict"]
    assert any(not torch.equal(encoder_before[k], after[k]) for k in encoder_before)


def test_encoder_training_without_gan_run_names_the_missing_file(trained: dict, tmp_path: Path) -> None:
    proc = trained["run"](
        "run", "training", "--config_file", overlay("train.json", "train_encoder.json"),
        "--gan_dir", str(tmp_path / "none"), "--output_dir", str(tmp_path / "enc"), check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"{tmp_path / 'none' / 'models' / 'model.pt'}: model file not found" in proc.stderr


def test_inference_on_a_nifti_file_keeps_shape_and_affine(trained: dict[str, Path], phantom: Path, tmp_path) -> None:
    source = phantom / "mri" / "image_1.nii.gz"
    # without the largest-component filter, so that the mask is exactly the thresholded probability map
    infer(
        trained,
        source,
        tmp_path,
        "--mode",
        "quick",
        "--save_probabilities",
        "true",
        "--keep_largest_component",
        "false",
    )
    mask = nib.load(tmp_path / "image_1_seg.nii.gz")
    prob = nib.load(tmp_path / "image_1_prob.nii.gz")
    image = nib.load(source)
    assert mask.shape == image.shape == prob.shape
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-5)
    assert mask.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    p = np.asarray(prob.dataobj)
    assert p.min() >= 0 and p.max() <= 1
    # MONAI's AsDiscrete keeps p >= threshold; bf16 logits (amp auto) put some voxels at exactly 0.5
    np.testing.assert_array_equal(np.asarray(mask.dataobj), (p >= 0.5).astype(np.uint8))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_inference_optimize_mode_on_a_folder(trained: dict[str, Path], phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    infer(trained, phantom / "mri", out, "--mode", "optimize", "--optimize_steps", "3", "--slices_per_batch", "5")
    names = sorted(p.name for p in out.iterdir())
    # the folder holds images and labels; every NIfTI in it is a volume to segment
    assert "image_1_seg.nii.gz" in names and "image_3_seg.nii.gz" in names
    for name in ("image_1", "image_2", "image_3"):
        assert nib.load(out / f"{name}_seg.nii.gz").shape == nib.load(phantom / "mri" / f"{name}.nii.gz").shape


def test_inference_on_a_dicom_series(trained: dict[str, Path], tmp_path: Path) -> None:
    series = SHARED / "totalseg" / "example_ct_dicom"
    if not series.is_dir():
        pytest.skip(f"{series} not available")
    infer(trained, series, tmp_path, "--mode", "quick", "--modality", "ct")
    mask = nib.load(tmp_path / "example_ct_dicom_seg.nii.gz")
    assert mask.shape == (512, 512, 20)
    # the same geometry MONAI's SimpleITK-free reader path gives for the series (RAS affine)
    from monai_semgan.data import SimpleITKReader

    reader = SimpleITKReader()
    _, meta = reader.get_data(reader.read(str(series)))
    np.testing.assert_allclose(mask.affine, meta["affine"], atol=1e-3)


def test_evaluate_writes_per_case_dice(trained: dict[str, Path], phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = trained["run"](
        "run", "evaluating", "--config_file", overlay("inference.json", "evaluate.json"),
        "--dataset_dir", str(phantom / "mri"),
        "--output_dir", str(out), "--model_path", str(trained["model"]), "--mode", "quick",
        "--label_values", "1",  # a bare value from the command line (fire passes an int)
    )  # fmt: skip
    rows = list(csv.DictReader((out / "dice.csv").open()))
    assert [r["case"] for r in rows] == ["image_1", "image_2", "image_3", "mean", "std"]
    dice = [float(r["dice"]) for r in rows[:3]]
    assert all(0.0 <= d <= 1.0 for d in dice)
    assert float(rows[3]["dice"]) == pytest.approx(np.mean(dice), abs=1e-4)
    assert "image_2" in proc.stdout and "mean" in proc.stdout


def test_ckpt_export_traces_quick_mode(trained: dict[str, Path], tmp_path: Path) -> None:
    ts_path = tmp_path / "model.ts"
    trained["run"](
        "ckpt_export", "network_def", "--filepath", str(ts_path), "--ckpt_file", str(trained["model"]),
        "--key_in_ckpt", "state_dict", "--model_path", str(trained["model"]),
        "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json"),
        "--mode", "quick", "--use_trace", "True", "--input_shape", "[1,1,16,16]",
    )  # fmt: skip
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    # a trace is float32 whatever amp says: compare with the float32 network
    parser.update({"mode": "quick", "model_path": str(trained["model"]), "device": torch.device("cpu"), "amp": "off"})
    net = parser.get_parsed_content("network")
    exported = torch.jit.load(str(ts_path))
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x))


def _write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("2d", "3-D volume"),
        ("4d", "one channel"),
        ("constant", "constant image"),
        ("not_axial", "not axial"),
        ("sagittal", "not axial"),
    ],
)
def test_bad_volumes_fail_with_the_file_named_and_nothing_written(
    trained: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    rng = np.random.default_rng(0)
    bad = tmp_path / f"{case}.nii.gz"
    if case == "2d":
        _write(bad, rng.random((32, 32)).astype(np.float32))
    elif case == "4d":
        _write(bad, rng.random((16, 16, 8, 3)).astype(np.float32))
    elif case == "constant":
        _write(bad, np.full((16, 16, 8), 7.0, np.float32))
    elif case == "not_axial":
        # an array stored slice-first ([D, H, W]) with an identity affine: 8 x 64 mm "axial" planes
        _write(bad, rng.random((8, 64, 64)).astype(np.float32))
    else:
        # a sagittal acquisition: 6 mm along x, 1 mm in-plane
        _write(bad, rng.random((10, 60, 60)).astype(np.float32), np.diag([6.0, 1.0, 1.0, 1.0]))
    out = tmp_path / "out"
    proc = infer(trained, bad, out, "--mode", "quick", check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(bad) in last and message in last, proc.stderr[-2000:]
    assert not out.exists()


def test_missing_checkpoint_and_other_resolution_fail_clearly(trained: dict[str, Path], phantom, tmp_path) -> None:
    source = phantom / "mri" / "image_1.nii.gz"
    out = tmp_path / "out"
    missing = tmp_path / "nope.pt"
    proc = trained["run"](
        "run", "inference", "--config_file", str(CONFIGS / "inference.json"), "--input", str(source),
        "--output_dir", str(out), "--model_path", str(missing), check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and str(missing) in proc.stderr and "not found" in proc.stderr
    assert not out.exists()
    # a 0.5.x file (a bare state dict) fails naming the file and how to state its architecture, then runs with it
    legacy = tmp_path / "legacy.pt"
    model = torch.load(trained["model"], weights_only=True)
    torch.save(model["state_dict"], legacy)
    proc = trained["run"](
        "run", "inference", "--config_file", str(CONFIGS / "inference.json"), "--input", str(source),
        "--output_dir", str(out), "--model_path", str(legacy), check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert str(legacy) in proc.stderr and "0.5.x" in proc.stderr and "model_architecture" in proc.stderr
    assert not out.exists()
    trained["run"](
        "run", "inference", "--config_file", str(CONFIGS / "inference.json"), "--input", str(source),
        "--output_dir", str(out), "--model_path", str(legacy),
        "--model_architecture", json.dumps(model["architecture"]),
    )  # fmt: skip
    assert (out / "image_1_seg.nii.gz").exists()


def test_inference_into_its_input_folder_never_replaces_an_input(trained: dict, phantom: Path, tmp_path: Path) -> None:
    """The reproduction of issue 19: a real image named like a mask, and the output folder equal to the input."""
    same = tmp_path / "same"
    same.mkdir()
    shutil.copy(phantom / "mri" / "image_2.nii.gz", same / "a.nii.gz")
    shutil.copy(phantom / "mri" / "image_3.nii.gz", same / "a_seg.nii.gz")
    before = (same / "a_seg.nii.gz").read_bytes()
    proc = infer(trained, same, same, check=False)
    assert proc.returncode != 0 and "would overwrite an input" in proc.stderr
    assert (same / "a_seg.nii.gz").read_bytes() == before
    assert sorted(p.name for p in same.iterdir()) == ["a.nii.gz", "a_seg.nii.gz"]
    # with an image of its own name, twice into the same folder: the second run skips the first run's mask
    (same / "a_seg.nii.gz").rename(tmp_path / "moved.nii.gz")
    infer(trained, same, same)
    infer(trained, same, same)
    assert sorted(p.name for p in same.iterdir()) == ["a.nii.gz", "a_seg.nii.gz"]


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--threshold", "2", "setting threshold = 2: must be a number from 0 to 1"),
        ("--mode", "fast", 'setting mode = \'fast\': must be "quick" or "optimize"'),
        ("--slices_per_batch", "0", "setting slices_per_batch = 0: must be a positive integer"),
    ],
)
def test_a_bad_setting_is_one_line_and_nothing_is_written(
    trained: dict, phantom: Path, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    out = tmp_path / "out"
    proc = infer(trained, phantom / "mri" / "image_1.nii.gz", out, flag, value, check=False)
    assert proc.returncode == 1
    assert last_line(proc) == f"error: {message} ({flag} on the command line).", proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Failed to evaluate" not in proc.stderr
    assert not out.exists()


def test_debug_prints_the_whole_traceback(trained: dict, phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = infer(trained, phantom / "mri" / "image_1.nii.gz", out, "--threshold", "2", "--debug", "true", check=False)
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert "setting threshold = 2" in proc.stderr and not out.exists()


def test_an_output_folder_that_cannot_be_a_folder_is_refused_before_work(
    trained: dict, phantom: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = infer(trained, phantom / "mri" / "image_1.nii.gz", blocker / "out", check=False)
    assert proc.returncode == 1 and last_line(proc) == (
        f"error: {blocker}: is a file, so output_dir {blocker / 'out'} cannot be a folder; choose another output_dir."
    )
    assert blocker.read_text() == "not a folder"


def test_evaluation_names_unscored_cases_and_counts_the_scored(trained: dict, phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("image_1", "image_2", "image_3", "label_1", "label_3"):
        shutil.copy(phantom / "mri" / f"{name}.nii.gz", data / f"{name}.nii.gz")
    empty = nib.load(data / "label_1.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(empty.shape, np.uint8), empty.affine), data / "label_1.nii.gz")
    out = tmp_path / "eval"
    proc = trained["run"](
        "run", "evaluating", "--config_file", overlay("inference.json", "evaluate.json"), "--dataset_dir", str(data),
        "--output_dir", str(out), "--model_path", str(trained["model"]), "--label_values", "1",
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert f"1 image(s) without a label file, not scored: {data / 'image_2.nii.gz'}" in log
    assert "image_1: the reference has no voxel of the structure (check label_values)" in log
    assert "1 of 2 cases scored; 1 with an empty reference left out" in log
    rows = {r["case"]: r for r in csv.DictReader((out / "dice.csv").open())}
    assert list(rows) == ["image_1", "image_3", "mean", "std"]
    assert rows["image_1"]["dice"] == "" and rows["mean"]["dice"] == rows["image_3"]["dice"]
