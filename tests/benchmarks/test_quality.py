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
"""benchmarks.quality end to end on the tiny phantom with a tiny model: the split, every training and evaluation
step through the bundle commands, the CSVs and plot, resuming (finished steps are skipped), and the history."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monai_semgan.data import discover_cases

ROOT = Path(__file__).resolve().parents[2]
TINY = ["resolution=16", "z_dim=16", "w_dim=16", "mapping_layers=1", "channel_base=256", "channel_max=16",
        "unet_channels=[4,8]", "unet_strides=[2]", "unet_res_units=1", "batch_size=2", "slices_per_volume=2",
        "iterations_per_epoch=2"]  # fmt: skip


def run_quality(phantom: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "benchmarks.quality", "--train_dir", str(phantom / "ct"), "--modality", "ct",
        "--label_values", "1", "--test_name", "phantom_ct", "--ood", "phantom_mri", "mri", "1", str(phantom / "mri"),
        "--num_labeled", "1", "--quick", "--gan_iterations", "2", "--encoder_iterations", "2", "--optimize_steps", "1",
        "--unet_time_factor", "0.2", "--set", *TINY, "--gan", "joint_base_channels=4", "--out", str(out / "runs"),
        "--report_dir", str(out / "report"), *extra,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def first_run(tiny_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("quality")
    proc = run_quality(tiny_phantom, out, "--tag", "first")
    return {"out": out, "stdout": proc.stdout, "phantom": tiny_phantom}


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, wherever pytest runs from (quality and quality_diagnostics import nothing
    from benchmarks/)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_quality() -> ModuleType:
    return load_script("quality")


def test_every_step_runs_and_the_report_is_written(first_run: dict) -> None:
    out = first_run["out"]
    run = out / "runs" / "first" / "quick"
    split = json.loads((run / "data" / "split.json").read_text(encoding="utf-8"))
    # 3 phantom cases: 1 held out for test, 2 for training of which K = 1 keeps its label
    assert len(split["train"]) == 2 and len(split["labeled_order"]) == 2
    train = json.loads((run / "data" / "train_k1.json").read_text(encoding="utf-8"))["training"]
    assert sum("label" in c for c in train) == 1
    test = json.loads((run / "data" / "test_phantom_ct.json").read_text(encoding="utf-8"))["training"]
    assert len(test) == 1 and not {Path(c["image"]).name for c in test} & {Path(c["image"]).name for c in train}
    # both methods trained on the same labeled case, and the models are kept for evaluate.json
    gan_split = json.loads((run / "k1" / "semgan" / "gan" / "split.json").read_text(encoding="utf-8"))
    unet_split = json.loads((run / "k1" / "unet" / "split.json").read_text(encoding="utf-8"))
    assert gan_split["labeled"] == unet_split["labeled"]
    assert (run / "k1" / "semgan" / "encoder" / "models" / "model.pt").exists()
    assert (run / "k1" / "unet" / "models" / "model.pt").exists()
    summary = read(out / "report" / "summary_quick.csv")
    keys = {(r["method"], r["test_set"]) for r in summary}
    methods = ("semgan_quick", "semgan_optimize", "unet", "unet_dg", "position_prior")
    assert keys == {(m, s) for m in methods for s in ("phantom_ct", "phantom_mri")}
    assert all(0.0 <= float(r["dice_mean"]) <= 1.0 and r["tag"] == "first" for r in summary)
    cases = read(out / "report" / "cases_quick.csv")
    assert len(cases) == 5 * (1 + 3)  # per method: 1 in-domain case and the 3 MRI phantoms
    # the domain-generalization U-Net trained on the same labeled case with GIN + IPA in its slice pipeline
    dg_split = json.loads((run / "k1" / "unet_dg" / "split.json").read_text(encoding="utf-8"))
    assert dg_split["labeled"] == unet_split["labeled"]
    dg_done = json.loads((run / "k1" / "unet_dg" / "done.json").read_text(encoding="utf-8"))
    assert "train_unet_dg.json" in " ".join(dg_done["command"])
    prior = json.loads((run / "k1" / "eval" / "position_prior" / "phantom_mri" / "done.json").read_text("utf-8"))
    assert prior["fitted_on"] == [c["image"] for c in train if "label" in c]
    assert (out / "report" / "quality_first_quick.png").stat().st_size > 10_000
    assert "tag `first`:" in first_run["stdout"] and "| 1 | phantom_ct | " in first_run["stdout"]


def test_rerun_skips_finished_steps_and_keeps_history(first_run: dict) -> None:
    out, phantom = first_run["out"], first_run["phantom"]
    run = out / "runs" / "first" / "quick"
    redo = run / "k1" / "eval" / "unet" / "phantom_mri"
    (redo / "done.json").unlink()
    proc = run_quality(phantom, out, "--tag", "first")
    assert proc.stdout.count("done before") == 13  # 4 trainings + 9 of the 10 evaluations
    assert "[K=1] evaluate unet on phantom_mri" in proc.stdout and "finished in" in proc.stdout
    before = {(r["method"], r["test_set"]): r["dice_mean"] for r in read(run / "summary.csv")}
    assert len(before) == 10
    # a second tag adds rows; the first tag's rows stay
    summary = read(out / "report" / "summary_quick.csv")
    assert {r["tag"] for r in summary} == {"first"}
    (out / "report" / "summary_quick.csv").write_text(
        (out / "report" / "summary_quick.csv").read_text(encoding="utf-8").replace("first", "older"), encoding="utf-8"
    )
    # an inference-only variant reuses the trained models and adds its rows; the first tag's rows stay
    proc = run_quality(phantom, out, "--tag", "second", "--models_from", "first", "--eval", "threshold=0.3")
    assert proc.stdout.count("done before") == 4 and proc.stdout.count("finished in") == 10
    marker = json.loads((out / "runs" / "second" / "quick" / "k1" / "eval" / "semgan_quick" / "phantom_ct" /
                         "done.json").read_text(encoding="utf-8"))  # fmt: skip
    assert marker["command"][-2:] == ["--threshold", "0.3"]
    assert str(run / "k1" / "semgan" / "encoder" / "models" / "model.pt") in marker["command"]
    tags = [r["tag"] for r in read(out / "report" / "summary_quick.csv")]
    assert tags.count("older") == 10 and tags.count("second") == 10


def test_a_gan_trains_on_from_another_tags_and_counts_its_time(first_run: dict, capsys: pytest.CaptureFixture) -> None:
    out, phantom = first_run["out"], first_run["phantom"]
    first = out / "runs" / "first" / "quick" / "k1" / "semgan" / "gan"
    untouched = {name: (first / name).read_bytes() for name in ("done.json", "attempt.json", "log.txt")}
    proc = run_quality(phantom, out, "--tag", "longer", "--gan_continue", "first", "--gan_iterations", "4",
                       "--methods", "semgan_quick")  # fmt: skip
    gan = out / "runs" / "longer" / "quick" / "k1" / "semgan" / "gan"
    assert f"continuing the GAN of {first}" in proc.stdout
    log = (gan / "log.txt").read_text(encoding="utf-8")
    assert log.count("$ ") == 2 and f"resumed from {gan / 'checkpoints'}" in log  # the first tag's run, then this one
    done = json.loads((gan / "done.json").read_text(encoding="utf-8"))
    first_wall = json.loads((first / "done.json").read_text(encoding="utf-8"))["wall_s"]
    assert done["attempts"] == 2 and done["wall_s"] > first_wall
    assert done["command"][done["command"].index("--iterations") + 1] == "4"
    # the source is left as it was
    assert {name: (first / name).read_bytes() for name in untouched} == untouched
    # a continuation with other settings, or to no more iterations, is refused before anything is copied
    quality = load_quality()
    cmd = json.loads((first / "done.json").read_text(encoding="utf-8"))["command"]
    with pytest.raises(ValueError, match="its settings differ"):
        quality.continue_gan(first, out / "other", [*cmd, "--r1_gamma", "1"])
    with pytest.raises(ValueError, match="not fewer than"):
        quality.continue_gan(first, out / "other", cmd)
    with pytest.raises(FileNotFoundError, match="no finished GAN"):
        quality.continue_gan(out / "missing", out / "other", cmd)
    assert not (out / "other").exists()
    # it cannot be combined with reusing a GAN as it is
    with pytest.raises(SystemExit):
        quality.main(["--train_dir", str(phantom), "--gan_continue", "first", "--gan_from", "first"])
    assert "give one of them" in capsys.readouterr().err


def test_bad_ood_spec_names_the_file(tiny_phantom: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "benchmarks.quality", "--train_dir", str(tiny_phantom / "ct"), "--ood", "x", "mri",
           "1", f"{tmp_path}/missing.nii.gz={tmp_path}/label.nii.gz", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "missing.nii.gz: file not found" in proc.stderr


def test_diagnostics_of_a_finished_run(first_run: dict, tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    run = first_run["out"] / "runs" / "first" / "quick" / "k1"
    cmd = [sys.executable, "-m", "benchmarks.quality_diagnostics", "--run", str(run), "--csv",
           str(tmp_path / "diag.csv"), "--plot", str(tmp_path / "diag.png"), "--profile_plot",
           str(tmp_path / "profiles.png"), "--detail_grid", str(tmp_path / "detail.png"), "--position_prior",
           "--set", *TINY[:6]]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "profiles.png").stat().st_size > 10_000
    rows = read(tmp_path / "diag.csv")
    assert [r["test_set"] for r in rows] == ["phantom_ct"] + ["phantom_mri"] * 3
    assert float(rows[0]["generated_detail"]) > 0 and float(rows[0]["real_detail"]) > 0
    assert float(rows[0]["generated_detail_no_noise"]) >= 0
    from PIL import Image

    assert Image.open(tmp_path / "detail.png").size == (8 * 2 * 16, 3 * 2 * 16)  # 8 columns, 3 rows, 16 px doubled
    prior_dir = run / "eval" / "position_prior"
    assert sorted(p.name for p in prior_dir.iterdir()) == ["phantom_ct", "phantom_mri"]
    for r in rows:
        # the prior's masks lie on each test volume's own grid, like every method's
        mask = nib.load(prior_dir / r["test_set"] / f"{r['case']}_seg.nii.gz")
        semgan = nib.load(run / "eval" / "semgan_quick" / r["test_set"] / f"{r['case']}_seg.nii.gz")
        assert mask.shape == semgan.shape and np.allclose(mask.affine, semgan.affine)
        assert 0 <= float(r["dice_position_prior"]) <= 1 and float(r["volume_ratio_position_prior"]) > 0
        assert float(r["position_prior_threshold"]) in (0.1, 0.2, 0.3, 0.4, 0.5)
        assert float(r["recon_mse"]) > 0 and float(r["volume_ratio_unet"]) >= 0
        assert 0 <= float(r["outside_share_semgan_quick"]) <= 1
        assert 0 <= float(r["dice_semgan_quick"]) <= 1
        assert 0 < float(r["labeled_liver_fraction"]) < 1 and 0 <= float(r["generated_liver_fraction"]) <= 1
    assert (tmp_path / "diag.png").stat().st_size > 10_000


def test_datalists_written_from_a_relative_train_dir_resolve(
    tiny_phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a datalist's relative paths are read relative to its own folder, so a relative --train_dir must not leak into it
    quality = load_quality()
    monkeypatch.chdir(tiny_phantom)
    cases = discover_cases("ct")
    assert not Path(cases[0]["image"]).is_absolute()
    datalist = quality.write_datalist(cases, tmp_path / "data" / "train.json")
    found = discover_cases(datalist)
    assert [c["case_id"] for c in found] == [c["case_id"] for c in cases]
    assert all(Path(c["image"]).is_file() and Path(c["label"]).is_file() for c in found)


def test_a_unet_is_reused_only_with_the_same_settings_cases_and_enough_time(tmp_path: Path) -> None:
    quality = load_quality()
    datalist = tmp_path / "train_k1.json"
    datalist.write_text(json.dumps({"training": [{"image": "/a.nii.gz", "label": "/b.nii.gz"}]}), encoding="utf-8")
    folder = tmp_path / "other" / "unet"

    def command(out: Path, data: Path, seconds: int, *extra: str) -> list[str]:
        return ["python", "-m", "monai.bundle", "--output_dir", str(out), "--dataset_dir", str(data),
                "--time_limit_s", str(seconds), "--seed", "0", *extra]  # fmt: skip

    assert quality.reusable_unet(folder, command(folder, datalist, 100), 100.0) == "it is not done"
    folder.mkdir(parents=True)
    other_data = tmp_path / "other_k1.json"
    other_data.write_text(datalist.read_text(encoding="utf-8"), encoding="utf-8")
    done = {"wall_s": 101.0, "command": command(folder, other_data, 100)}
    (folder / "done.json").write_text(json.dumps(done), encoding="utf-8")
    # another output folder and another (identical) datalist file: reusable within its budget
    assert quality.reusable_unet(folder, command(tmp_path / "x", datalist, 100), 99.8) == ""
    assert "less than" in quality.reusable_unet(folder, command(tmp_path / "x", datalist, 160), 160.0)
    other = quality.reusable_unet(folder, command(tmp_path / "x", datalist, 100, "--flip_prob", "0"), 50.0)
    assert other == "its settings differ"
    other_data.write_text(json.dumps({"training": []}), encoding="utf-8")
    assert quality.reusable_unet(folder, command(tmp_path / "x", datalist, 100), 50.0) == "its training cases differ"


def test_a_variant_reuses_the_gan_and_unet_and_evaluates_the_chosen_methods(first_run: dict) -> None:
    out, phantom = first_run["out"], first_run["phantom"]
    first = out / "runs" / "first" / "quick" / "k1"
    # a tiny budget: the first tag's U-Net trained longer, so it stands in
    proc = run_quality(
        phantom,
        out,
        "--tag",
        "encoder_variant",
        "--gan_from",
        "first",
        "--unet_from",
        "first",
        "--encoder",
        "fg_ratio=0",
        "--unet_time_factor",
        "0.001",
        "--methods",
        "semgan_quick",
        "unet",
    )
    assert proc.stdout.count("done before") == 2 and "not reusing" not in proc.stdout  # GAN and U-Net
    run = out / "runs" / "encoder_variant" / "quick" / "k1"
    assert not (run / "unet").exists() and not (run / "eval" / "semgan_optimize").exists()
    marker = json.loads((run / "eval" / "unet" / "phantom_ct" / "done.json").read_text(encoding="utf-8"))
    assert str(first / "unet" / "models" / "model.pt") in marker["command"]
    encoder = json.loads((run / "semgan" / "encoder" / "done.json").read_text(encoding="utf-8"))["command"]
    assert encoder[-2:] == ["--fg_ratio", "0"] and str(first / "semgan" / "gan") in encoder
    rows = [r for r in read(out / "report" / "summary_quick.csv") if r["tag"] == "encoder_variant"]
    assert {r["method"] for r in rows} == {"semgan_quick", "unet"}
    # other U-Net settings: a new U-Net trains
    proc = run_quality(
        phantom,
        out,
        "--tag",
        "unet_variant",
        "--gan_from",
        "first",
        "--unet_from",
        "first",
        "--unet",
        "flip_prob=0",
        "--methods",
        "unet",
    )
    assert "not reusing the U-Net of tag first: its settings differ" in proc.stdout
    assert (out / "runs" / "unet_variant" / "quick" / "k1" / "unet" / "models" / "model.pt").exists()


def test_a_semgan_only_screen_trains_no_unet_and_its_diagnostics_skip_it(first_run: dict, tmp_path: Path) -> None:
    out, phantom = first_run["out"], first_run["phantom"]
    proc = run_quality(phantom, out, "--tag", "screen", "--gan_from", "first", "--methods", "semgan_quick")
    assert "U-Net not trained: --methods leaves it out" in proc.stdout
    run = out / "runs" / "screen" / "quick" / "k1"
    assert not (run / "unet").exists() and sorted(p.name for p in (run / "eval").iterdir()) == ["semgan_quick"]
    cmd = [sys.executable, "-m", "benchmarks.quality_diagnostics", "--run", str(run), "--csv",
           str(tmp_path / "diag.csv"), "--set", *TINY[:6]]  # fmt: skip
    diag = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, timeout=300)
    assert diag.returncode == 0, diag.stderr[-3000:]
    rows = read(tmp_path / "diag.csv")
    assert len(rows) == 4 and "dice_semgan_quick" in rows[0]
    assert not any(key.endswith("_unet") or "optimize" in key for key in rows[0])


def load_diagnostics() -> ModuleType:
    return load_script("quality_diagnostics")


def test_labeled_liver_fraction_draws_the_same_slices_for_a_seed(tiny_phantom: Path, tmp_path: Path) -> None:
    from monai_semgan.data import write_split

    diagnostics = load_diagnostics()
    cases = [{"image": str(tiny_phantom / "ct" / f"image_{i}.nii.gz"), "label": str(tiny_phantom / "ct" /
              f"label_{i}.nii.gz")} for i in (1, 2)]  # fmt: skip
    write_split(tmp_path, cases, [], num_labeled=2, seed=0)
    fractions = [diagnostics.labeled_liver_fraction(tmp_path, "ct", 16, {1: 1}, samples=32, seed=s) for s in (0, 0, 1)]
    assert fractions[0] == fractions[1] and 0 < fractions[0] < 1
    assert fractions[2] != fractions[0]


def test_an_interrupted_step_counts_every_attempt(tmp_path: Path) -> None:
    quality = load_quality()
    folder = tmp_path / "step"
    folder.mkdir()
    # an attempt that started 120 s before its log was last written, then was killed (no done.json)
    (folder / "log.txt").write_text("$ earlier attempt\n", encoding="utf-8")
    written = (folder / "log.txt").stat().st_mtime
    (folder / "attempt.json").write_text(json.dumps({"started": written - 120.0, "before_s": 30.0, "attempts": 2}))
    wall = quality.run_step("step", [sys.executable, "-c", "print('resumed')"], folder)
    assert 150.0 <= wall < 150.0 + 60.0
    done = json.loads((folder / "done.json").read_text(encoding="utf-8"))
    assert done["attempts"] == 3 and done["wall_s"] == wall
    assert "resumed" in (folder / "log.txt").read_text(encoding="utf-8")
    # a fresh step: one attempt, its own time only
    fresh = quality.run_step("fresh", [sys.executable, "-c", "pass"], tmp_path / "fresh")
    assert fresh < 60.0 and json.loads((tmp_path / "fresh" / "done.json").read_text(encoding="utf-8"))["attempts"] == 1


def test_fine_detail_is_the_mean_absolute_laplacian(tiny_phantom: Path, tmp_path: Path) -> None:
    import torch

    from monai_semgan.data import write_split

    diagnostics = load_diagnostics()
    assert diagnostics.mean_abs_laplacian(torch.full((2, 1, 8, 8), 0.3)) == 0.0
    checkerboard = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0
    assert diagnostics.mean_abs_laplacian(checkerboard[None, None]) == pytest.approx(8.0)
    case = {"image": str(tiny_phantom / "ct" / "image_1.nii.gz"), "label": str(tiny_phantom / "ct" / "label_1.nii.gz")}
    write_split(tmp_path, [case], [{"image": str(tiny_phantom / "ct" / "image_2.nii.gz")}], num_labeled=1, seed=0)
    details = [diagnostics.mean_abs_laplacian(diagnostics.real_slices(tmp_path, "ct", 16, samples=8)) for _ in "ab"]
    assert 0 < details[0] < 8 and details[0] == details[1]
