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
"""``python -m benchmarks.precision speed`` times float32 and bf16 on a real CHAOS volume and prints its table;
the quality part's table and figure from run folders the test writes. No timing is asserted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.precision import quality, quality_table, side_by_side

ROOT = Path(__file__).resolve().parents[2]
VOLUME = ROOT.parent / "shared" / "data" / "chaos_t2spir" / "image_2.nii.gz"


@pytest.mark.slow
def test_speed_times_both_precisions_on_a_real_volume(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.precision", "speed", "--volume", str(VOLUME), "--steps", "2",
         "--repeats", "1", "--json", str(tmp_path / "speed.json")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| workload | size | float32 | bf16 | bf16 speed-up | bf16 mask vs float32 (Dice) |" in proc.stdout
    result = json.loads((tmp_path / "speed.json").read_text())
    assert set(result["medians_s"]) == {"off", "bf16"} and result["steps"] == 2 and result["slices"] > 10
    assert all(v > 0 for p in result["medians_s"].values() for v in p.values())
    assert 0.0 <= result["mask_dice_bf16_vs_fp32"]["quick"] <= 1.0


def test_quality_table_and_side_by_side_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    for name in ("fp32-seed0", "bf16-seed0"):
        samples = tmp_path / name / "train" / "samples"
        samples.mkdir(parents=True)
        for iteration in (100, 600):
            plt.imsave(samples / f"iter_{iteration:07d}.png", np.random.default_rng(iteration).random((16, 32)))
    figure = tmp_path / "docs" / "precision.png"
    side_by_side(tmp_path, figure)
    assert figure.stat().st_size > 0 and plt.imread(figure).shape[2] in (3, 4)
    row = {"run": "bf16-seed0", "amp": "bf16", "seed": 0, "gan_min": 5.27, "encoder_min": 2.06, "liver_pixels": 0.097,
           "samples_with_liver": 1.0, "dice_chaos_t2": 0.2735, "std_chaos_t2": 0.0544, "dice_phantom_ct": 0.5038,
           "std_phantom_ct": 0.0235}  # fmt: skip
    assert "| bf16-seed0 | bf16 | 0 | 5.3 | 2.1 | 9.7% | 100% | 0.274 (0.054) | 0.504 (0.024) |" in quality_table([row])


def test_quality_refuses_an_unknown_run_before_training(tmp_path: Path) -> None:
    args = argparse.Namespace(out=str(tmp_path), runs=["auto-seed0", "fp64-seed0"], figure="", figure_runs=[])
    with pytest.raises(ValueError, match=r"unknown runs \['fp64-seed0'\]"):
        quality(args)
    assert not any(tmp_path.iterdir())
