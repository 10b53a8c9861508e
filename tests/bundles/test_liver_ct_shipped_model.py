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
"""The model the bundle ships (``models/model.pt``): present, small, self-describing, described by ``metadata.json``,
used by ``inference.json`` with no ``--model_path``, never a training command's output, and it segments a real MRI
volume it never saw."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"
CONFIGS = BUNDLE / "configs"
SHIPPED = BUNDLE / "models" / "model.pt"
CHAOS = ROOT.parent / "shared" / "data" / "chaos_t2spir"


def parsed(*names: str, **overrides: object) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / n) for n in names])
    parser.update({"bundle_root": str(BUNDLE), **overrides})
    return parser


def test_the_shipped_model_is_a_small_self_describing_segmenter() -> None:
    assert SHIPPED.is_file(), f"{SHIPPED}: the bundle ships no model"
    assert sum(f.stat().st_size for f in SHIPPED.parent.iterdir()) < 25 * 2**20
    model = torch.load(SHIPPED, weights_only=True)
    assert model["format"] == "monai_semgan.model" and model["format_version"] == 1
    assert model["architecture"]["target"] == "monai_semgan.segmentation.SemanticSegmenter"
    assert any(k.startswith("encoder.") for k in model["state_dict"])
    assert model["metadata"]["resolution"] == 64


def test_metadata_describes_the_data_the_licence_and_the_scores() -> None:
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    assert "BTCV" in meta["data_source"] and "research" in meta["intended_use"].lower()
    assert "weights" in meta["license_weights"].lower() or "btcv" in meta["license_weights"].lower()
    metrics = meta["eval_metrics"]
    for key in ("btcv_ct_mean_dice", "chaos_t2_mean_dice"):
        assert 0.0 < metrics[key] <= 1.0, key
    assert "benchmarks/quality.py" in metrics["setting"]


def test_inference_uses_the_shipped_model_and_training_never_writes_it() -> None:
    assert Path(parsed("inference.json").get_parsed_content("model_path")) == SHIPPED
    assert Path(parsed("inference.json", "evaluate.json").get_parsed_content("model_path")) == SHIPPED
    shipped = SHIPPED.resolve()
    for configs in (("train.json",), ("train.json", "train_encoder.json"), ("train.json", "train_unet.json")):
        written = Path(parsed(*configs).get_parsed_content("model_path")).resolve()
        assert written != shipped and BUNDLE.resolve() / "runs" in written.parents, configs


@pytest.mark.slow
@pytest.mark.skipif(not CHAOS.is_dir(), reason="../shared/data is absent")
def test_the_shipped_model_segments_an_unseen_mri_volume(tmp_path: Path) -> None:
    image, label = CHAOS / "image_1.nii.gz", CHAOS / "label_1.nii.gz"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", str(CONFIGS / "inference.json"),
           "--bundle_root", str(BUNDLE), "--input", str(image), "--output_dir", str(tmp_path),
           "--modality", "mri"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    seg = nib.load(tmp_path / "image_1_seg.nii.gz")
    ref = np.asarray(nib.load(label).dataobj) == 1
    pred = np.asarray(seg.dataobj) > 0
    assert pred.shape == ref.shape
    dice = 2 * (pred & ref).sum() / (pred.sum() + ref.sum())
    assert dice > 0.4, dice  # the position prior of its labeled CT volumes scores 0.32 on this case, the model 0.50
