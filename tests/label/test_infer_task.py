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
"""The MONAI Label tasks in-process: labels and the served model's name from the bundle metadata, the image_path /
Spacingd fix, a whole inference call, the launcher's command line (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import EnsureChannelFirstd, LoadImaged, Spacingd

pytest.importorskip("monailabel", reason="MONAI Label is not installed (pip install -e '.[label]')")

from monai_semgan.label import SemanticGanInferTask, bundle_labels, served_model_name  # noqa: E402
from monai_semgan.label.__main__ import build_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"


@pytest.fixture(scope="module")
def task(tiny_model: dict) -> SemanticGanInferTask:
    # no architecture override: the task builds the network from the model file
    return SemanticGanInferTask(BUNDLE, [tiny_model["model"]], {"mode": "quick"})


def test_bundle_labels(tmp_path: Path) -> None:
    assert bundle_labels(BUNDLE) == {"liver": 1}
    (tmp_path / "configs").mkdir()
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "1": "Liver", "2": "x"}}}}}
    (tmp_path / "configs" / "metadata.json").write_text(json.dumps(meta))
    assert bundle_labels(tmp_path) == {"liver": 1, "x": 2}
    with pytest.raises(FileNotFoundError, match="metadata"):
        bundle_labels(tmp_path / "nope")


def test_served_model_name_comes_from_the_metadata(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"  # the folder's name plays no part
    (bundle / "configs").mkdir(parents=True)
    meta = bundle / "configs" / "metadata.json"
    meta.write_text(json.dumps({"name": "Liver CT (v2) -> MRI"}))
    assert served_model_name(bundle) == "liver_ct_v2_mri"
    meta.write_text(json.dumps({"name": "Liver CT", "model_name": "liver_ct"}))
    assert served_model_name(bundle) == "liver_ct"
    assert served_model_name(bundle, "my_model") == "my_model"
    name = json.loads((BUNDLE / "configs" / "metadata.json").read_text()).get("model_name")
    assert served_model_name(BUNDLE) == (name or "semanticgan_liver_segmentation_ct_mri")
    with pytest.raises(ValueError, match="not a plain name"):
        served_model_name(bundle, "../x")
    meta.write_text("{}")
    with pytest.raises(ValueError, match="model_name"):
        served_model_name(bundle)
    with pytest.raises(FileNotFoundError):
        served_model_name(tmp_path / "nope")


@pytest.mark.slow  # the tiny model is trained by bundle commands in subprocesses
def test_image_path_is_held_aside_from_spacing(task: SemanticGanInferTask, tiny_model: dict) -> None:
    path = str(tiny_model["phantom"] / "mri" / "image_1.nii.gz")
    transforms = [LoadImaged("image"), EnsureChannelFirstd("image"), Spacingd("image", pixdim=(12.0, 12.0, 20.0))]
    # the clash this works around: MONAI >= 1.6 Spacingd updates the string image_path's metadata and fails
    with pytest.raises(Exception, match="has no attribute .update."):
        SemanticGanInferTask.__mro__[1].run_pre_transforms(task, {"image": path, "image_path": path}, transforms)
    data = task.run_pre_transforms({"image": path, "image_path": path}, transforms)
    assert data["image_path"] == path
    assert data["image"].shape[0] == 1


@pytest.mark.slow  # the tiny model is trained by bundle commands in subprocesses
def test_a_whole_inference_call(task: SemanticGanInferTask, tiny_model: dict) -> None:
    path = tiny_model["phantom"] / "mri" / "image_2.nii.gz"
    result_file, result = task({"image": str(path), "device": "cpu"})
    mask, image = nib.load(result_file), nib.load(path)
    assert mask.shape == image.shape
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    assert "latencies" in result


def test_launcher_command(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    cmd = build_command(
        ["--studies", str(studies), "--bundle", str(BUNDLE), "--workspace", str(tmp_path / "ws"), "--port", "9001",
         "--set", "resolution=32", "perceptual=ssim"]
    )  # fmt: skip
    assert cmd[1:5] == ["-m", "monailabel.main", "start_server", "--app"]
    assert (tmp_path / "ws" / "main.py").read_text().count("SemanticGanLabelApp") == 1
    conf = {cmd[i + 1]: cmd[i + 2] for i, a in enumerate(cmd) if a == "--conf"}
    assert conf["bundle"] == str(BUNDLE.resolve())
    assert conf["model_name"] == served_model_name(BUNDLE)
    overrides = json.loads(conf["overrides"])
    assert overrides["resolution"] == 32 and overrides["perceptual"] == "ssim" and overrides["mode"] == "quick"
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "9001"]
    with pytest.raises(SystemExit):
        build_command(["--studies", str(tmp_path / "missing"), "--bundle", str(BUNDLE)])
    with pytest.raises(SystemExit):
        build_command(["--studies", str(studies), "--bundle", str(tmp_path)])


@pytest.mark.parametrize(("given", "expected"), [("6", {"6": 1}), ("btcv", {"6": 1}), ("[1, 2]", {"1": 1, "2": 1})])
def test_launcher_label_values_in_any_form(tmp_path: Path, given: str, expected: dict) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    cmd = build_command(
        ["--studies", str(studies), "--bundle", str(BUNDLE), "--workspace", str(tmp_path / "ws"),
         "--label_values", given]
    )  # fmt: skip
    conf = {cmd[i + 1]: cmd[i + 2] for i, a in enumerate(cmd) if a == "--conf"}
    assert json.loads(conf["label_values"]) == expected


def test_launcher_refuses_unknown_label_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    with pytest.raises(SystemExit):
        build_command(["--studies", str(studies), "--bundle", str(BUNDLE), "--label_values", "liver"])
    assert "label_values 'liver'" in capsys.readouterr().err


def test_launcher_binds_to_loopback_by_default(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    base = ["--studies", str(studies), "--bundle", str(BUNDLE), "--workspace", str(tmp_path / "ws")]
    cmd = build_command(base)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "warning" not in capsys.readouterr().err
    cmd = build_command([*base, "--host", "0.0.0.0", "--model_name", "liver"])
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "without authentication" in capsys.readouterr().err  # exposing it is said out loud
    conf = {cmd[i + 1]: cmd[i + 2] for i, a in enumerate(cmd) if a == "--conf"}
    assert conf["model_name"] == "liver"
    with pytest.raises(SystemExit):
        build_command([*base, "--ssl_keyfile", str(tmp_path / "key.pem")])  # without its certificate
    with pytest.raises(SystemExit):
        build_command([*base, "--model_name", "../x"])
