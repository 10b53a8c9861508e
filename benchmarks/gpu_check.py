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
"""The GPU path checked on a lent GPU in one command: one line of verdict per check, every result in one folder.

Checks, in order, each with a time limit taken from one overall budget (``--budget``, default 420 s, so that the
whole command fits one device call of 8 minutes on a fresh machine):

``env``         Python, torch, CUDA, the GPU (nvidia-smi), nvcc, the commit and the date.
``packages``    installs the wheels carried in ``--wheels`` (``pip install --no-index --no-deps --target``) and
                imports what the project needs.
``build``       builds the CUDA extension into a fresh cache (``build_cuda_ops``).
``gpu-tests``   ``tests/ops/test_cuda_ops.py -m gpu``: the kernels against the reference, forward, backward,
                double backward, every dtype, non-contiguous and channels_last inputs.
``training``    the bundle's CPU config (``train.json``) trained on the GPU for 20 iterations, then resumed to 30: the
                losses finite, checkpoints and model written and finite, the resume taken from the last checkpoint.
``benchmark``   ``benchmarks.train_step`` on the paper config: ``ours`` (CUDA ops), ``ours-ref`` (CUDA ops off) and
                ``ours-bf16``.

Files written to ``--out`` (default ``$OUT``, else ``runs/gpu_check``): ``verdicts.txt``, ``results.json``,
``build.log``, ``gpu_tests.log``, ``training.log``, ``train_step.log``, ``train_step.json`` (seven files, one
folder; rewritten after every check, so a run cut short still leaves what it did).

On the device machine (docs/ops.md says how the wheels are prepared and carried)::

    python3 -m benchmarks.gpu_check --wheels .whl --out "$OUT"

``--dry-run`` rehearses it on a CPU: the same commands with CPU settings and a few iterations; what needs CUDA
(``build``, the GPU tests' results) is skipped and says so. This module imports only the standard library at the
top, since it runs before the carried packages are installed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "CheckRun", "main", "run_command", "verify_training"]

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "liver_ct"
OUTPUT_FILES = (
    "verdicts.txt",
    "results.json",
    "build.log",
    "gpu_tests.log",
    "training.log",
    "train_step.log",
    "train_step.json",
)
# the imports the project needs beyond torch, and what the wheels provide on a machine that lacks them
REQUIRED_MODULES = ("numpy", "monai", "ignite", "nibabel", "SimpleITK", "fire", "skimage", "tensorboard", "pytest")
BENCH_IMPLS = "ours,ours-ref,ours-bf16"


@dataclass
class Check:
    """The outcome of one check.

    Attributes:
        name: the check's name.
        status: ``OK``, ``FAIL``, ``TIMEOUT`` or ``SKIP``.
        detail: one line: the numbers, or why it failed or was skipped.
        seconds: wall time.
        data: parsed results for ``results.json``.
    """

    name: str
    status: str = "SKIP"
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The verdict line, e.g. ``OK       build      built in 41 s (44 s)``."""
        return f"{self.status:<8} {self.name:<10} {self.detail} ({self.seconds:.0f} s)"


def run_command(
    cmd: list[str], log: Path | None, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Run ``cmd`` from the repository root in a process group of its own, appending its output to ``log``.

    Args:
        cmd: the command.
        log: file the command line and output are appended to, or ``None``.
        timeout: seconds; the whole process group (compilers, workers) is killed after that.
        env: environment; default this process's.

    Returns:
        the exit status (``None`` after a timeout) and the output.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as err:
        output, code = f"could not start {cmd[0]}: {err}\n", 127
    else:
        try:
            output, _ = proc.communicate(timeout=max(timeout, 1.0))
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            output += f"\n[gpu_check: killed after {timeout:.0f} s]\n"
            code = None
    if log is not None:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(cmd)}\n{output}\n[exit {code}, {time.monotonic() - start:.1f} s]\n\n")
    return code, output


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-400:]


class CheckRun:
    """Runs the checks in order under one time budget and writes the results after each.

    Args:
        args: parsed command-line arguments.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry = args.dry_run
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            (self.out / name).unlink(missing_ok=True)
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="semgan_gpu_check_"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget
        self.checks: list[Check] = []
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", MONAI_SEMGAN_CACHE=str(self.work / "cache"))
        self.env.pop("MONAI_SEMGAN_CUDA_OPS", None)
        self.python = sys.executable
        self.started = datetime.datetime.now(datetime.timezone.utc)

    def remaining(self) -> float:
        """Seconds left of the budget."""
        return self.deadline - time.monotonic()

    def _pythonpath(self, first: str | None = None) -> None:
        parts = [p for p in (first, str(ROOT), self.env.get("PYTHONPATH")) if p]
        self.env["PYTHONPATH"] = os.pathsep.join(parts)

    def step(self, name: str, func: Any, cap: float, needs: float = 20.0) -> Check:
        """Run one check with a time limit of ``min(cap, what is left)``; print and save its verdict."""
        check = Check(name)
        timeout = min(cap, self.remaining() - 5)
        start = time.monotonic()
        if timeout < needs:
            check.detail = f"no time left ({self.remaining():.0f} s of the budget)"
        else:
            try:
                func(check, timeout)
            except Exception as err:  # a check's own bug must not cost the other checks
                check.status, check.detail = "FAIL", f"gpu_check error: {type(err).__name__}: {err}"
        check.seconds = time.monotonic() - start
        self.checks.append(check)
        print(check.line(), flush=True)
        self.write()
        return check

    def write(self) -> None:
        """Write ``verdicts.txt`` and ``results.json``."""
        env = next((c.data for c in self.checks if c.name == "env"), {})
        header = f"monai-semgan gpu_check {'(dry run) ' if self.dry else ''}{self.started:%Y-%m-%d %H:%M} UTC"
        machine = env.get("gpu") or env.get("machine", "")
        lines = [header, f"machine: {machine}", *(c.line() for c in self.checks)]
        (self.out / "verdicts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        results = {
            "started_utc": self.started.isoformat(timespec="seconds"),
            "dry_run": self.dry,
            "budget_s": self.args.budget,
            "checks": [asdict(c) for c in self.checks],
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")

    # ------------------------------------------------------------------------------------------------ the checks

    def check_env(self, check: Check, timeout: float) -> None:
        """Versions, GPU, compiler, commit, date."""
        code = (
            "import json, torch; c = torch.cuda.is_available(); "
            "print(json.dumps({'torch': torch.__version__, 'torch_cuda': torch.version.cuda, 'cuda_available': c, "
            "'device_name': torch.cuda.get_device_name(0) if c else None, "
            "'capability': list(torch.cuda.get_device_capability(0)) if c else None}))"
        )
        status, output = run_command([self.python, "-c", code], None, timeout, self.env)
        data: dict[str, Any] = {
            "date_utc": self.started.isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        }
        if status == 0:
            data.update(json.loads(output.strip().splitlines()[-1]))
        else:
            data["torch_error"] = _tail(output)
        if shutil.which("nvidia-smi"):
            _, smi = run_command(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], None, 30
            )
            data["gpu"] = smi.strip().splitlines()[0] if smi.strip() else ""
        nvcc = shutil.which("nvcc") or (
            "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None
        )
        if nvcc:
            _, version = run_command([nvcc, "--version"], None, 30)
            data["nvcc"] = _tail(version, 1)
        _, rev = run_command(["git", "rev-parse", "--short", "HEAD"], None, 30)
        data["commit"] = rev.strip().splitlines()[0] if rev.strip() and " " not in rev.strip() else "unknown"
        check.data = data
        summary = f"torch {data.get('torch')} (CUDA {data.get('torch_cuda')}), {data.get('device_name') or 'no GPU'}"
        if status != 0:
            check.status, check.detail = "FAIL", f"torch does not import: {data['torch_error']}"
        elif not data.get("cuda_available") and not self.dry:
            check.status, check.detail = "FAIL", f"{summary}: CUDA is not available"
        else:
            check.status, check.detail = "OK", summary + (" (dry run)" if self.dry else "")

    def check_packages(self, check: Check, timeout: float) -> None:
        """Install the carried wheels into a target folder, then import every module the checks need."""
        wheels = sorted(Path(self.args.wheels).glob("*.whl")) if self.args.wheels else []
        installed = ""
        if wheels:
            site = Path(self.args.site)
            cmd = [self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
            cmd += ["--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]
            status, output = run_command(cmd, None, timeout, self.env)
            if status != 0:
                check.status, check.detail = "FAIL", f"pip install of {len(wheels)} wheels failed: {_tail(output)}"
                check.data["pip"] = output[-3000:]
                return
            self._pythonpath(str(site))
            installed = f"{len(wheels)} wheels installed into {site}; "
        else:
            self._pythonpath()
            installed = f"no wheels in {self.args.wheels or '(none given)'}; "
        code = (
            "import importlib, json\n"
            f"mods = {list(REQUIRED_MODULES) + ['monai_semgan']!r}\n"
            "out = {}\n"
            "for m in mods:\n"
            "    try:\n"
            "        out[m] = getattr(importlib.import_module(m), '__version__', 'ok')\n"
            "    except Exception as err:\n"
            "        out[m] = f'MISSING: {type(err).__name__}: {err}'\n"
            "print(json.dumps(out))\n"
        )
        status, output = run_command([self.python, "-c", code], None, timeout, self.env)
        try:
            versions = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            check.status, check.detail = "FAIL", f"import check failed: {_tail(output)}"
            return
        check.data = {"wheels": [w.name for w in wheels], "versions": versions}
        missing = sorted(m for m, v in versions.items() if str(v).startswith("MISSING"))
        shown = ", ".join(f"{m} {versions[m]}" for m in ("monai", "ignite", "numpy") if m in versions)
        if missing:
            check.status, check.detail = "FAIL", installed + "missing: " + "; ".join(versions[m] for m in missing)
        else:
            check.status, check.detail = "OK", installed + shown

    def check_build(self, check: Check, timeout: float) -> None:
        """Build the extension into the fresh cache; its log goes to ``build.log``."""
        if self.dry:
            check.detail = "needs nvcc and a GPU's architecture: skipped in a dry run (CI builds it without a GPU)"
            return
        code = (
            "import time; from monai_semgan.ops import build_cuda_ops; t = time.time(); "
            f"m = build_cuda_ops(verbose=True, timeout={int(timeout - 5)}); "
            "print('BUILT', m.__file__, round(time.time() - t, 1))"
        )
        status, output = run_command([self.python, "-c", code], self.out / "build.log", timeout, self.env)
        match = re.search(r"BUILT (\S+) ([\d.]+)", output)
        if status == 0 and match:
            check.status, check.detail = "OK", f"built in {float(match.group(2)):.0f} s"
            check.data = {"module": match.group(1), "seconds": float(match.group(2))}
        else:
            check.status = "TIMEOUT" if status is None else "FAIL"
            check.detail = f"build failed: {_tail(output)}"

    def check_gpu_tests(self, check: Check, timeout: float) -> None:
        """The GPU tests of the ops; counts from their JUnit report, failures named."""
        junit = self.work / "gpu_tests.xml"
        cmd = [self.python, "-m", "pytest", "tests/ops/test_cuda_ops.py", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
        cmd += [f"--junitxml={junit}", "-o", "junit_family=xunit1"]
        status, output = run_command(cmd, self.out / "gpu_tests.log", timeout, self.env)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failed: list[str] = []
        if junit.exists():
            root = ET.parse(junit).getroot()
            suite = root if root.tag == "testsuite" else root.find("testsuite")
            if suite is not None:
                counts = {k: int(suite.get(k, 0)) for k in counts}
                for case in suite.iter("testcase"):
                    if case.find("failure") is not None or case.find("error") is not None:
                        failed.append(case.get("name", "?"))
        passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        check.data = {**counts, "passed": passed, "failed_tests": failed}
        summary = f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped"
        if status is None:
            check.status, check.detail = "TIMEOUT", summary
        elif self.dry:
            # without CUDA the module skips itself at collection (pytest exits 5, nothing collected): the rehearsal
            # is that pytest found and imported it
            ok = status in (0, 5) and counts["failures"] + counts["errors"] == 0
            check.status = "SKIP" if ok else "FAIL"
            check.detail = f"no CUDA: {summary} (dry run)" if ok else f"{summary}: {_tail(output)}"
        elif status == 0 and passed > 0 and counts["skipped"] == 0:
            check.status, check.detail = "OK", summary
        else:
            check.status = "FAIL"
            check.detail = summary + (f"; first failures: {', '.join(failed[:3])}" if failed else f": {_tail(output)}")

    def check_training(self, check: Check, timeout: float) -> None:
        """Train the CPU config, resume it for more iterations, and verify the outputs in a child process."""
        first, total, per_epoch = (2, 3, 1) if self.dry else (20, 30, 10)
        run_dir = self.work / "training"
        shutil.rmtree(run_dir, ignore_errors=True)
        log = self.out / "training.log"
        base = [self.python, "-m", "monai.bundle", "run", "training", "--config_file"]
        base += [str(BUNDLE / "configs" / "train.json"), "--bundle_root", str(BUNDLE), "--output_dir", str(run_dir)]
        base += ["--iterations_per_epoch", str(per_epoch)]
        env = dict(self.env, OMP_NUM_THREADS="1") if self.dry else self.env  # a dry run shares a small CPU
        start = time.monotonic()
        status, out1 = run_command([*base, "--iterations", str(first)], log, timeout, env)
        if status != 0:
            check.status = "TIMEOUT" if status is None else "FAIL"
            check.detail = f"first run ({first} iterations): {_tail(out1)}"
            return
        left = timeout - (time.monotonic() - start)
        status, out2 = run_command([*base, "--iterations", str(total)], log, left, env)
        if status != 0:
            check.status = "TIMEOUT" if status is None else "FAIL"
            check.detail = f"resumed run ({total} iterations): {_tail(out2)}"
            return
        left = max(timeout - (time.monotonic() - start), 30)
        cmd = [self.python, "-m", "benchmarks.gpu_check", "--verify-training", str(run_dir), "--iterations", str(total)]
        status, out3 = run_command(cmd, log, left, env)
        try:
            result = json.loads(out3.strip().splitlines()[-1])
        except (ValueError, IndexError):
            check.status, check.detail = "FAIL", f"verification failed: {_tail(out3)}"
            return
        resumed = re.search(r"resumed from \S*checkpoint_(\d+)\.pt", out2)
        result["resumed_from"] = int(resumed.group(1)) if resumed else None
        result["cuda_ops_unavailable"] = "CUDA ops unavailable" in out1 + out2
        check.data = result
        problems = list(result["problems"])
        if result["resumed_from"] != first:
            problems.append(f"the second run did not resume from checkpoint_{first}.pt")
        if not self.dry and result.get("device") != "cuda":
            problems.append(f"trained on {result.get('device')}, not cuda")
        if not self.dry and result["cuda_ops_unavailable"]:
            problems.append("the CUDA ops were unavailable (reference ops used)")
        losses = ", ".join(f"{k.removeprefix('loss_')}={v:.3g}" for k, v in result["last_losses"].items())
        detail = f"{first}+{total - first} iterations on {result.get('device')}, resumed from checkpoint_{first}.pt"
        if problems:
            check.status, check.detail = "FAIL", "; ".join(problems)
        else:
            check.status, check.detail = "OK", f"{detail}, checkpoint_{total}.pt written; last losses {losses}"

    def check_benchmark(self, check: Check, timeout: float) -> None:
        """``benchmarks.train_step`` with the CUDA ops on, off and in bf16; seconds per iteration and ratios."""
        result_json = self.out / "train_step.json"
        cmd = [self.python, "-m", "benchmarks.train_step", "--impls", BENCH_IMPLS, "--json", str(result_json)]
        if self.dry:
            cmd += ["--config", "cpu", "--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "0"]
            cmd += ["--fwd-iters", "1", "--wait-idle", "0", "--threads", "1"]
        else:
            cmd += ["--config", "paper", "--device", "cuda"]
            if timeout < 240:  # half the default iterations, still one whole 16-iteration cycle timed
                cmd += ["--steps", "16", "--warmup", "8"]
        status, output = run_command(cmd, self.out / "train_step.log", timeout, self.env)
        if status != 0 or not result_json.exists():
            check.status = "TIMEOUT" if status is None else "FAIL"
            check.detail = f"train_step failed: {_tail(output)}"
            return
        results = {r["impl"]: r for r in json.loads(result_json.read_text(encoding="utf-8"))["results"]}
        check.data = {
            impl: {k: r.get(k) for k in ("s_per_it", "img_per_s", "g_forward_s", "peak_memory_mb", "losses")}
            for impl, r in results.items()
        }
        bad = [
            i for i, r in results.items() if not all(math.isfinite(float(v)) for v in (r.get("losses") or {}).values())
        ]
        parts = []
        for impl, r in results.items():
            part = f"{impl} {r['s_per_it']:.3g} s/it"
            if impl != "ours" and "ours" in results:
                part += f" ({r['s_per_it'] / results['ours']['s_per_it']:.2f}x the time of ours)"
            parts.append(part)
        config = "cpu config on the CPU (dry run)" if self.dry else "paper config"
        if bad:
            check.status, check.detail = "FAIL", f"non-finite losses in {', '.join(bad)}"
        else:
            check.status, check.detail = "OK", f"{config}: " + ", ".join(parts)


def verify_training(run_dir: Path, iterations: int) -> dict[str, Any]:
    """Read a bundle training run: the last checkpoint, the model file and the logged losses.

    Args:
        run_dir: the run's ``output_dir``.
        iterations: the iteration count the run was asked for.

    Returns:
        ``checkpoints`` (names), ``device`` the weights were on, ``last_losses`` (from TensorBoard), ``max_step``
        logged, and ``problems`` (empty when all is well).
    """
    import torch

    problems: list[str] = []
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint_*.pt"))
    last = run_dir / "checkpoints" / f"checkpoint_{iterations}.pt"
    device = None
    if not last.exists():
        problems.append(f"{last.name} missing (have {checkpoints})")
    else:
        state = torch.load(last, weights_only=False, map_location=None if torch.cuda.is_available() else "cpu")
        if state["trainer"]["iteration"] != iterations:
            problems.append(f"{last.name} holds iteration {state['trainer']['iteration']}")
        weights = state["generator"]
        device = next(iter(weights.values())).device.type
        for key in ("generator", "generator_ema", "image_discriminator", "joint_discriminator"):
            if not all(torch.isfinite(v).all() for v in state[key].values() if v.is_floating_point()):
                problems.append(f"non-finite weights in {key}")
    model = run_dir / "models" / "model.pt"
    if not model.exists():
        problems.append("models/model.pt missing")
    last_losses: dict[str, float] = {}
    max_step = 0
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        if not (run_dir / "tensorboard").is_dir():
            raise FileNotFoundError
        events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if tag.startswith("loss"):
                values = events.Scalars(tag)
                max_step = max(max_step, max(e.step for e in values))
                last_losses[tag] = values[-1].value
                if not all(math.isfinite(e.value) for e in values):
                    problems.append(f"non-finite {tag}")
    except FileNotFoundError:
        pass  # reported below as no losses logged
    except ImportError as err:
        problems.append(f"cannot read the TensorBoard losses: {err}")
    if not last_losses:
        problems.append("no losses logged")
    elif max_step != iterations:
        problems.append(f"losses logged up to iteration {max_step}, not {iterations}")
    return {
        "checkpoints": checkpoints,
        "device": device,
        "last_losses": last_losses,
        "max_step": max_step,
        "problems": problems,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"))
    parser.add_argument("--wheels", default=str(ROOT / ".whl"), help="folder of carried wheels (may be absent)")
    parser.add_argument("--site", default="/tmp/semgan_site", help="where the wheels are installed (--target)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all checks together")
    parser.add_argument("--dry-run", action="store_true", help="rehearse on a CPU: CPU settings, no CUDA steps")
    parser.add_argument("--only", default=None, help="comma-separated checks to run (env always runs)")
    parser.add_argument("--verify-training", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print one verdict line per check, then all of them again.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0 when no check failed or timed out, else 1.
    """
    args = _parse_args(argv)
    if args.verify_training:
        print(json.dumps(verify_training(Path(args.verify_training), args.iterations)))
        return 0
    run = CheckRun(args)
    steps = [
        ("env", run.check_env, 60),
        ("packages", run.check_packages, 120),
        ("build", run.check_build, 300),
        ("gpu-tests", run.check_gpu_tests, 240),
        ("training", run.check_training, 240),
        ("benchmark", run.check_benchmark, 300),
    ]
    only = (set(args.only.split(",")) | {"env", "packages"}) if args.only else None
    print(f"gpu_check: {len(steps)} checks, budget {args.budget:.0f} s, results in {run.out}", flush=True)
    for name, func, cap in steps:
        if only is not None and name not in only:
            continue
        run.step(name, func, cap)
    print("\n" + (run.out / "verdicts.txt").read_text(encoding="utf-8"), end="", flush=True)
    if not args.work:
        shutil.rmtree(run.work, ignore_errors=True)
    return 1 if any(c.status in ("FAIL", "TIMEOUT") for c in run.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
