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
"""The supervised U-Net baseline of the liver_ct bundle: `run training` with train_unet.json (split, checkpoints,
resume, wall-time limit), then the same evaluate.json and inference.json commands with unet.json added."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundles" / "liver_ct" / "configs"


def overlay(*names: str) -> str:
    """``--config_file`` for bundle configs merged in order (MONAI's list syntax)."""
    return "[" + ", ".join(f"'{CONFIGS / name}'" for name in names) + "]"


# a small U-Net for 16-px slices; evaluation and inference read it from the model file
TINY_UNET = ["--resolution", "16", "--unet_channels", "[4, 8]", "--unet_strides", "[2]", "--unet_res_units", "1"]
TINY_DATA = ["--batch_size", "2", "--slices_per_volume", "2", "--iterations_per_epoch", "2", "--label_values", "chaos"]

# every test runs bundle commands in subprocesses (and the session's tiny model is trained by them)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unet_run(tiny_model: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("unet")
    proc = tiny_model["run"](
        "run", "training", "--config_file", overlay("train.json", "train_unet.json"), "--output_dir", str(out),
        "--dataset_dir", str(tiny_model["phantom"] / "ct"), "--num_labeled", "1", "--iterations", "4",
        *TINY_UNET, *TINY_DATA,
    )  # fmt: skip
    return {"out": out, "log": proc.stdout + proc.stderr, "run": tiny_model["run"], "phantom": tiny_model["phantom"]}


def test_training_writes_split_checkpoints_model_and_resumes(unet_run: dict) -> None:
    out = unet_run["out"]
    assert "U-Net training finished: 4 iterations" in unet_run["log"]
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert len(split["labeled"]) == 1 and len(split["unlabeled"]) == 2
    model = torch.load(out / "models" / "model.pt", weights_only=True)
    assert model["architecture"]["target"] == "monai.networks.nets.UNet"
    assert model["architecture"]["args"]["channels"] == [4, 8] and model["metadata"] == {"resolution": 16}
    assert any("conv" in k for k in model["state_dict"])
    assert (out / "checkpoints" / "checkpoint_4.pt").exists() and any((out / "tensorboard").iterdir())
    proc = unet_run["run"](
        "run", "training", "--config_file", overlay("train.json", "train_unet.json"), "--output_dir", str(out),
        "--dataset_dir", str(unet_run["phantom"] / "ct"), "--num_labeled", "1", "--iterations", "6",
        *TINY_UNET, *TINY_DATA,
    )  # fmt: skip
    assert "checkpoint_4.pt" in proc.stdout + proc.stderr
    assert "U-Net training finished: 6 iterations" in proc.stdout


def test_time_limit_stops_training(unet_run: dict, tmp_path: Path) -> None:
    proc = unet_run["run"](
        "run", "training", "--config_file", overlay("train.json", "train_unet.json"), "--output_dir", str(tmp_path),
        "--dataset_dir", str(unet_run["phantom"] / "ct"), "--num_labeled", "1", "--iterations", "1000000",
        "--time_limit_s", "3", *TINY_UNET, *TINY_DATA,
    )  # fmt: skip
    done = int(re.search(r"U-Net training finished: (\d+) iterations", proc.stdout).group(1))
    assert 0 < done < 1000000
    assert (tmp_path / "models" / "model.pt").exists()  # exported when the limit ends the run


def test_evaluate_and_infer_with_unet_config(unet_run: dict, tmp_path: Path) -> None:
    configs = overlay("inference.json", "evaluate.json", "unet.json")
    model = str(unet_run["out"] / "models" / "model.pt")
    phantom = unet_run["phantom"] / "ct"
    unet_run["run"](
        "run", "evaluating", "--config_file", configs, "--model_path", model, "--dataset_dir", str(phantom),
        "--output_dir", str(tmp_path / "eval"), "--modality", "ct",
    )  # fmt: skip
    with open(tmp_path / "eval" / "dice.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["image_1", "image_2", "image_3", "mean", "std"]
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    configs = overlay("inference.json", "unet.json")
    unet_run["run"](
        "run", "inference", "--config_file", configs, "--model_path", model, "--input", str(phantom / "image_2.nii.gz"),
        "--output_dir", str(tmp_path / "seg"), "--modality", "ct",
    )  # fmt: skip
    source = nib.load(phantom / "image_2.nii.gz")
    seg = nib.load(tmp_path / "seg" / "image_2_seg.nii.gz")
    assert seg.shape == source.shape and np.allclose(seg.affine, source.affine, atol=1e-5)
