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
"""``python -m benchmarks.train_step`` runs iterations of the shipped engine for our networks and the baseline, and
prints its table; ``benchmarks`` is a package every script imports from without ``sys.path`` edits. No timing is
asserted: the numbers are the benchmark's, not the tests'."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


def run_python(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python <args>`` from the repository root, one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, env=env,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_every_script_imports_as_a_module_of_the_benchmarks_package() -> None:
    assert {"quality", "quality_diagnostics", "stylegan2_baseline", "train_step"} <= set(SCRIPTS)
    run_python("-c", "import importlib; [importlib.import_module(f'benchmarks.{m}') for m in " + repr(SCRIPTS) + "]")
    for name in SCRIPTS:
        assert "sys.path" not in (ROOT / "benchmarks" / f"{name}.py").read_text(encoding="utf-8"), name


@pytest.mark.slow
def test_iterations_of_the_engine_for_ours_and_the_baseline(tmp_path: Path) -> None:
    # iterations 1-4: three plain ones and one with the path-length step; not a whole 16-iteration cycle
    proc = run_python(
        "-m", "benchmarks.train_step", "--impls", "ours,ours-bf16,baseline", "--batch", "2", "--steps", "3",
        "--warmup", "1", "--fwd-iters", "1", "--wait-idle", "0", "--json", str(tmp_path / "result.json"),
    )  # fmt: skip
    assert "engine: SemanticGanTrainer, no handlers" in proc.stdout
    assert '"joint_r1_gamma": 0.0' in proc.stdout  # the CPU bundle's setting
    assert "| impl | config | batch | s/iteration (amortized) |" in proc.stdout
    assert "| ours | cpu 64px | 2 |" in proc.stdout and "| baseline | cpu 64px | 2 |" in proc.stdout
    assert "| ours-bf16 | cpu 64px | 2 |" in proc.stdout and "vs ours float32 (train / G fwd)" in proc.stdout
    data = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    results = {r["impl"]: r for r in data["results"]}
    assert list(results) == ["ours", "ours-bf16", "baseline"]
    for r in results.values():
        assert not r["amortized_measured"]  # 3 timed iterations: estimated from the kinds of iteration
        assert r["plain"] > 0 and r["pl"] > 0 and r["r1_pl"] is None
        assert r["s_per_it"] > 0 and r["img_per_s"] == pytest.approx(2 / r["s_per_it"])
        # the engine's own output: the losses of the last iteration, which ran the path-length step
        assert {"loss_d_image", "loss_d_joint", "loss_g", "path_length_penalty"} <= set(r["losses"])
        assert "r1_joint" not in r["losses"] and all(math.isfinite(v) for v in r["losses"].values())
    assert len(data["runs"]["ours"]) == 1 and len(data["runs"]["ours"][0]["load_average"]) == 2
