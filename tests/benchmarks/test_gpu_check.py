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
"""``python -m benchmarks.gpu_check``, the one command for a lent GPU, rehearsed on the CPU (``--dry-run``): every
check that needs no CUDA runs for real, the results land in one folder that a device call can bring back."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A check that outlives its limit is reported as a timeout and leaves no child (a compiler, say) running."""
    log = tmp_path / "step.log"
    start = time.monotonic()
    status, output = gpu_check.run_command(["sh", "-c", "sleep 60 & echo child $!; wait"], log, timeout=1.5)
    assert status is None and time.monotonic() - start < 20
    assert "killed after" in output and "[exit None" in log.read_text()
    pid = int(re.search(r"child (\d+)", output).group(1))
    stat = Path(f"/proc/{pid}/stat")
    time.sleep(0.2)
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # gone, or a zombie waiting for init


def test_budget_skips_and_a_failing_check_does_not_stop_the_others(tmp_path: Path) -> None:
    run = gpu_check.CheckRun(
        gpu_check._parse_args(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path), "--budget", "60"])
    )

    def broken(check: gpu_check.Check, timeout: float) -> None:
        raise KeyError("results")

    def fine(check: gpu_check.Check, timeout: float) -> None:
        check.status, check.detail = "OK", f"limit {timeout:.0f} s"

    assert run.step("broken", broken, cap=30).status == "FAIL"
    assert run.step("fine", fine, cap=30).line().startswith("OK       fine       limit 30 s")
    skipped = run.step("late", fine, cap=30, needs=120)
    assert skipped.status == "SKIP" and "no time left" in skipped.detail
    verdicts = (tmp_path / "out" / "verdicts.txt").read_text().splitlines()
    assert verdicts[0].startswith("monai-semgan gpu_check (dry run)")
    assert [line.split()[:2] for line in verdicts[2:]] == [["FAIL", "broken"], ["OK", "fine"], ["SKIP", "late"]]
    assert "KeyError" in verdicts[2]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["name"] for c in results["checks"]] == ["broken", "fine", "late"]


def test_verify_training_names_what_is_missing(tmp_path: Path) -> None:
    result = gpu_check.verify_training(tmp_path, 30)
    assert result["device"] is None and result["last_losses"] == {}
    assert any("checkpoint_30.pt missing" in p for p in result["problems"])
    assert "models/model.pt missing" in result["problems"] and "no losses logged" in result["problems"]


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path: Path) -> None:
    """Everything but the CUDA build and the GPU tests' results: the package check, the GPU tests' command (skipped
    without CUDA), a short training resumed from its checkpoint, and the benchmark with the three impls; about 80 s
    on a 2-core CPU."""
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("OUT", None)
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out), "--work", str(tmp_path)]
    cmd += ["--wheels", str(tmp_path / "no_wheels")]
    proc = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT, env=env, timeout=900
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    statuses = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[0] in ("OK", "FAIL", "SKIP", "TIMEOUT"):
            statuses[fields[1]] = fields[0]
    assert statuses == {
        "env": "OK",
        "packages": "OK",
        "build": "SKIP",
        "gpu-tests": "SKIP",
        "training": "OK",
        "benchmark": "OK",
    }, proc.stdout
    # what a device call brings back: at most 8 plain files in one folder, plainly named
    files = sorted(p.name for p in out.iterdir())
    assert set(files) <= set(gpu_check.OUTPUT_FILES) and len(files) <= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files)
    assert proc.stdout.rstrip().endswith((out / "verdicts.txt").read_text().rstrip())  # the verdicts come last
    checks = {c["name"]: c for c in json.loads((out / "results.json").read_text())["checks"]}
    assert checks["env"]["data"]["cuda_available"] is False
    training = checks["training"]["data"]
    assert training["resumed_from"] == 2 and training["max_step"] == 3 and not training["problems"]
    assert training["checkpoints"][-1] == "checkpoint_3.pt" and training["device"] == "cpu"
    assert all(math.isfinite(v) for v in training["last_losses"].values())
    assert set(checks["benchmark"]["data"]) == {"ours", "ours-ref", "ours-bf16"}
    assert "resumed from" in (out / "training.log").read_text()
    assert "tests/ops/test_cuda_ops.py" in (out / "gpu_tests.log").read_text()
