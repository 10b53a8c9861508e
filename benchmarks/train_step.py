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
"""Speed of one SemanticGAN training step and of the generator forward: monai_semgan against a StyleGAN2 baseline.

One training step (:func:`train_step`, written once and run identically for every implementation) is one SemanticGAN
iteration on ``B`` labeled and ``B`` unlabeled images:

1. one generator forward without gradient (style mixing 0.9) makes ``B`` fake images and labels for both D steps;
2. image discriminator: non-saturating logistic loss, fake images against real unlabeled images; every 16 iterations
   a separate R1 step (gamma 10, weight scaled by 16) on the real images;
3. joint discriminator: hinge loss, fake ``(image, label logits)`` against real ``(image, mask in [-1, 1])``; every 16
   iterations a separate R1 step on the concatenated real input;
4. generator: a fresh forward (style mixing 0.9); image-D logistic loss + joint-D hinge loss on
   ``(image.detach(), label)`` + 2 x feature matching against the joint D's features of the real labeled pair; every 4
   iterations a separate path-length step (weight 2, scaled by 4) on half the batch.

Adam with lr ``0.002 * ratio`` and betas ``(0, 0.99 ** ratio)``, ``ratio = interval / (interval + 1)`` (lazy
regularization). The iteration counter starts at 0, so the first timed step carries every regularizer; timing a
multiple of 16 steps gives the amortized cost directly. Every phase is also timed on its own, so a run of any length
reports the plain step, the step with R1 + path length, and the amortized cost (measured when the steps are a multiple
of 16, otherwise estimated as ``plain + R1 / 16 + PL / 4``).

Shared machines: the timed steps run in blocks of 16 (one lazy-regularization cycle) and the fastest block counts;
the generator forward is the fastest of ``--fwd-iters`` calls; ``--repeats`` runs every implementation several times,
round robin, keeping its fastest run; on CPU each run first waits (``--wait-idle``) for other processes to leave the
CPUs idle. Two OpenMP threads on a 2-core machine slow down many-fold when anything else runs.

**img/s** is ``B`` (generated images, i.e. samples per step; the step also reads ``2 B`` real images) divided by the
seconds per step. Each implementation runs in its own subprocess, so the peak memory is its own: the peak resident
set (``VmHWM``) on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

Implementations (``--impls``):

* ``ours``: monai_semgan as shipped (non-fused modulated convolution, ops ``impl=None``: CUDA kernels on a GPU);
* ``ours-fused``: the same networks with ``fused_modconv=True``;
* ``ours-ref``: ``ours`` with ``MONAI_SEMGAN_CUDA_OPS=0`` (PyTorch reference ops); identical to ``ours`` on CPU;
* ``baseline``: :mod:`stylegan2_baseline`, the straightforward StyleGAN2 port with the same weights.

Examples::

    python benchmarks/train_step.py --config cpu --check
    python benchmarks/train_step.py --config paper --impls ours,baseline --steps 1 --warmup 1
    python benchmarks/train_step.py --config paper --device cuda --impls ours,ours-ref,ours-fused,baseline
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from monai_semgan.losses import (
    PathLengthPenalty,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    logistic_discriminator_loss,
    logistic_generator_loss,
    r1_penalty,
)
from monai_semgan.networks import ImageDiscriminator, JointDiscriminator, SemanticGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylegan2_baseline import check_baseline, make_baseline  # noqa: E402

__all__ = [
    "CONFIGS",
    "IMPLS",
    "TrainState",
    "build_networks",
    "build_state",
    "main",
    "train_step",
]

IMPLS = ("ours", "ours-fused", "ours-ref", "baseline")
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "generator": {
            "resolution": 64,
            "z_dim": 128,
            "w_dim": 128,
            "mapping_layers": 4,
            "channel_base": 2048,
            "channel_multiplier": 1,
            "channel_max": 128,
        },
        "image_discriminator": {"resolution": 64, "channel_base": 2048, "channel_multiplier": 1, "channel_max": 128},
        "joint_discriminator": {"base_channels": 32},
    },
    "paper": {
        "generator": {"resolution": 256},
        "image_discriminator": {"resolution": 256},
        "joint_discriminator": {},
    },
}
# per (config, device): batch, timed steps, warmup steps, generator forward iterations
DEFAULTS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("cpu", "cpu"): (4, 48, 2, 20),
    ("paper", "cpu"): (2, 1, 1, 2),
    ("cpu", "cuda"): (16, 32, 8, 50),
    ("paper", "cuda"): (16, 32, 8, 20),
}
R1_INTERVAL = 16
PL_INTERVAL = 4
R1_GAMMA = 10.0
PL_WEIGHT = 2.0
FEATURE_MATCHING_WEIGHT = 2.0
MIXING_PROB = 0.9
LR = 0.002
PHASES = ("fake", "d_image", "d_image_r1", "d_joint", "d_joint_r1", "g", "g_pl")
REG_PHASES = ("d_image_r1", "d_joint_r1", "g_pl")


def build_networks(
    config: str, impl: str, device: torch.device, seed: int = 0
) -> tuple[SemanticGenerator, ImageDiscriminator, JointDiscriminator]:
    """The three networks of ``config`` for ``impl``; the same seed gives the same weights for every ``impl``.

    Args:
        config: ``"cpu"`` or ``"paper"``.
        impl: one of :data:`IMPLS`.
        device: where to put them.
        seed: initialization seed.

    Returns:
        ``(generator, image_discriminator, joint_discriminator)``.
    """
    cfg = CONFIGS[config]
    torch.manual_seed(seed)
    generator = SemanticGenerator(**cfg["generator"], fused_modconv=impl == "ours-fused")
    image_d = ImageDiscriminator(**cfg["image_discriminator"])
    joint_d = JointDiscriminator(**cfg["joint_discriminator"])
    if impl == "baseline":
        generator, image_d = make_baseline(generator, image_d)
    return generator.to(device), image_d.to(device), joint_d.to(device)


def _adam(module: nn.Module, interval: int) -> torch.optim.Adam:
    ratio = interval / (interval + 1)
    return torch.optim.Adam(module.parameters(), lr=LR * ratio, betas=(0.0, 0.99**ratio))


@dataclass
class TrainState:
    """Networks, optimizers, the path-length tracker and a fixed batch of real data."""

    generator: SemanticGenerator
    image_d: ImageDiscriminator
    joint_d: JointDiscriminator
    opt_g: torch.optim.Optimizer
    opt_image_d: torch.optim.Optimizer
    opt_joint_d: torch.optim.Optimizer
    path_length: PathLengthPenalty
    real_unlabeled: torch.Tensor
    real_image: torch.Tensor
    real_mask: torch.Tensor
    batch: int
    phase_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def build_state(config: str, impl: str, batch: int, device: torch.device, seed: int = 0) -> TrainState:
    """Networks, optimizers and a fixed random batch (``batch`` unlabeled images, ``batch`` image-mask pairs).

    Args:
        config: ``"cpu"`` or ``"paper"``.
        impl: one of :data:`IMPLS`.
        batch: ``B``.
        device: device.
        seed: seed of weights and data.

    Returns:
        the training state.
    """
    generator, image_d, joint_d = build_networks(config, impl, device, seed)
    res = generator.resolution
    gen = torch.Generator().manual_seed(seed + 1)
    real_unlabeled = torch.rand(batch, generator.image_channels, res, res, generator=gen) * 2 - 1
    real_image = torch.rand(batch, generator.image_channels, res, res, generator=gen) * 2 - 1
    real_mask = (torch.rand(batch, generator.label_channels, res, res, generator=gen) > 0.5).float() * 2 - 1
    return TrainState(
        generator=generator,
        image_d=image_d,
        joint_d=joint_d,
        opt_g=_adam(generator, PL_INTERVAL),
        opt_image_d=_adam(image_d, R1_INTERVAL),
        opt_joint_d=_adam(joint_d, R1_INTERVAL),
        path_length=PathLengthPenalty().to(device),
        real_unlabeled=real_unlabeled.to(device),
        real_image=real_image.to(device),
        real_mask=real_mask.to(device),
        batch=batch,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _phase(state: TrainState, name: str) -> Iterator[None]:
    device = state.real_image.device
    _sync(device)
    start = time.perf_counter()
    yield
    _sync(device)
    state.phase_seconds[name] += time.perf_counter() - start


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_step(state: TrainState, iteration: int) -> None:
    """One SemanticGAN iteration (see the module docstring); adds each phase's seconds to ``state.phase_seconds``.

    Args:
        state: networks, optimizers and data.
        iteration: the iteration counter; R1 runs when it is a multiple of 16, path length when a multiple of 4.
    """
    g, image_d, joint_d = state.generator, state.image_d, state.joint_d
    b, device = state.batch, state.real_image.device
    do_r1 = iteration % R1_INTERVAL == 0
    do_pl = iteration % PL_INTERVAL == 0

    # --- discriminators ---
    _requires_grad(g, False)
    _requires_grad(image_d, True)
    _requires_grad(joint_d, True)
    with _phase(state, "fake"), torch.no_grad():
        fake_image, fake_label = g(torch.randn(b, g.z_dim, device=device), mixing_prob=MIXING_PROB)

    with _phase(state, "d_image"):
        loss = logistic_discriminator_loss(image_d(state.real_unlabeled), image_d(fake_image))
        state.opt_image_d.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_image_d.step()
    if do_r1:
        with _phase(state, "d_image_r1"):
            real = state.real_unlabeled.detach().requires_grad_(True)
            logits = image_d(real)
            penalty = r1_penalty(logits, real)
            state.opt_image_d.zero_grad(set_to_none=True)
            (R1_GAMMA / 2 * penalty * R1_INTERVAL + 0 * logits[0].sum()).backward()
            state.opt_image_d.step()

    with _phase(state, "d_joint"):
        real_out = joint_d(state.real_image, state.real_mask)
        fake_out = joint_d(fake_image, fake_label)
        loss = hinge_discriminator_loss(real_out, fake_out)
        state.opt_joint_d.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_joint_d.step()
    if do_r1:
        with _phase(state, "d_joint_r1"):
            image = state.real_image.detach().requires_grad_(True)
            mask = state.real_mask.detach().requires_grad_(True)
            out = joint_d(image, mask)
            penalty = r1_penalty(out, [image, mask])
            state.opt_joint_d.zero_grad(set_to_none=True)
            (R1_GAMMA / 2 * penalty * R1_INTERVAL + 0 * sum(s[-1].sum() for s in out)).backward()
            state.opt_joint_d.step()

    # --- generator ---
    _requires_grad(g, True)
    _requires_grad(image_d, False)
    _requires_grad(joint_d, False)
    with _phase(state, "g"):
        fake_image, fake_label = g(torch.randn(b, g.z_dim, device=device), mixing_prob=MIXING_PROB)
        with torch.no_grad():
            real_out = joint_d(state.real_image, state.real_mask)
        fake_out = joint_d(fake_image.detach(), fake_label)
        loss = (
            logistic_generator_loss(image_d(fake_image))
            + hinge_generator_loss(fake_out)
            + FEATURE_MATCHING_WEIGHT * feature_matching_loss(real_out, fake_out)
        )
        state.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        state.opt_g.step()
    if do_pl:
        with _phase(state, "g_pl"):
            half = max(1, b // 2)
            image, _, ws = g(torch.randn(half, g.z_dim, device=device), mixing_prob=MIXING_PROB, return_ws=True)
            penalty, _ = state.path_length(image, ws)
            state.opt_g.zero_grad(set_to_none=True)
            (PL_WEIGHT * PL_INTERVAL * penalty + 0 * image[0, 0, 0, 0]).backward()
            state.opt_g.step()


def _peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: allocated GPU memory, or the peak resident set on CPU.

    On Linux the peak resident set is ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``; ``ru_maxrss``
    (the fallback elsewhere) keeps the parent's resident set at the time of the fork across ``exec``.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up, time the training step and the generator forward of one implementation.

    Args:
        args: parsed arguments (``worker`` is the implementation).

    Returns:
        the measurements.
    """
    impl, device = args.worker, torch.device(args.device)
    load_start = os.getloadavg()[0]
    torch.set_num_threads(os.cpu_count() or 1)
    _seed_everything(args.seed)
    if device.type == "cuda" and impl != "ours-ref":
        from monai_semgan.ops import cuda_ops_or_none

        if cuda_ops_or_none() is None:
            print(f"[{impl}] CUDA ops unavailable: running the reference ops", file=sys.stderr)
    state = build_state(args.config, impl, args.batch, device, args.seed)
    log = f"[{impl} {args.config} B={args.batch}]"

    start = time.perf_counter()
    for i in range(args.warmup):
        train_step(state, i)
    print(f"{log} warmup {args.warmup} steps: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    # time blocks of 16 steps (a full lazy-regularization cycle) when possible and keep the fastest block: the least
    # disturbed by other processes on a shared machine
    block = R1_INTERVAL if args.steps % R1_INTERVAL == 0 else args.steps
    best: tuple[float, dict[str, float]] | None = None
    for first in range(0, args.steps, block):
        state.phase_seconds.clear()
        _sync(device)
        start = time.perf_counter()
        for i in range(first, first + block):
            train_step(state, i)
        _sync(device)
        total = time.perf_counter() - start
        print(f"{log} steps {first}-{first + block - 1}: {total:.2f} s", file=sys.stderr)
        if best is None or total < best[0]:
            best = (total, dict(state.phase_seconds))
    assert best is not None
    total, phases = best

    n_r1 = sum(1 for i in range(block) if i % R1_INTERVAL == 0)
    n_pl = sum(1 for i in range(block) if i % PL_INTERVAL == 0)
    plain = sum(phases.get(p, 0.0) for p in PHASES if p not in REG_PHASES) / block
    r1 = (phases.get("d_image_r1", 0.0) + phases.get("d_joint_r1", 0.0)) / n_r1
    pl = phases.get("g_pl", 0.0) / n_pl
    measured = block % R1_INTERVAL == 0
    amortized = total / block if measured else plain + r1 / R1_INTERVAL + pl / PL_INTERVAL

    # generator forward alone: fastest of fwd_iters timed calls, after one untimed call
    g = state.generator
    z = torch.randn(args.batch, g.z_dim, device=device)
    times = []
    with torch.no_grad():
        g(z)
        for _ in range(args.fwd_iters):
            _sync(device)
            start = time.perf_counter()
            g(z)
            _sync(device)
            times.append(time.perf_counter() - start)
    fwd = min(times)
    print(
        f"{log} generator forward: best {fwd * 1000:.1f} ms, median {sorted(times)[len(times) // 2] * 1000:.1f} ms",
        file=sys.stderr,
    )

    return {
        "impl": impl,
        "config": args.config,
        "device": args.device,
        "batch": args.batch,
        "steps": args.steps,
        "timed_block": block,
        "warmup": args.warmup,
        "amortized_measured": measured,
        "seconds_per_step": {"amortized": amortized, "plain": plain, "all_reg": plain + r1 + pl},
        "seconds_per_event": {"r1_both": r1, "path_length": pl},
        "phase_seconds_per_event": {
            p: phases.get(p, 0.0) / {"d_image_r1": n_r1, "d_joint_r1": n_r1, "g_pl": n_pl}.get(p, block) for p in PHASES
        },
        "img_per_s": {
            "amortized": args.batch / amortized,
            "plain": args.batch / plain,
            "all_reg": args.batch / (plain + r1 + pl),
            "g_forward": args.batch / fwd,
        },
        "load_average": [load_start, os.getloadavg()[0]],
        "peak_memory_mb": _peak_memory_mb(device),
    }


def run_profile(args: argparse.Namespace) -> None:
    """Profile ``args.profile`` training steps (counter from 0, so R1 and path length are included) on CPU.

    Args:
        args: parsed arguments (``worker`` is the implementation).
    """
    from torch.profiler import ProfilerActivity, profile

    impl, device = args.worker, torch.device(args.device)
    torch.set_num_threads(os.cpu_count() or 1)
    _seed_everything(args.seed)
    state = build_state(args.config, impl, args.batch, device, args.seed)
    for i in range(args.warmup):
        train_step(state, i)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(args.profile):
            train_step(state, i)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"## profile of {impl}, {args.config} config, B={args.batch}, {args.profile} steps")
    print(prof.key_averages().table(sort_by=sort_by, row_limit=args.profile_rows, max_name_column_width=60))


def _cpu_busy_fraction(seconds: float = 1.0) -> float | None:
    """Fraction of all CPUs busy over ``seconds`` (from ``/proc/stat``), or ``None`` where that file is missing."""

    def read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return idle, sum(values)

    first = read()
    time.sleep(seconds)
    second = read()
    if first is None or second is None or second[1] == first[1]:
        return None
    return 1.0 - (second[0] - first[0]) / (second[1] - first[1])


def _wait_for_idle(max_wait: float, threshold: float = 0.2) -> float | None:
    """Wait (at most ``max_wait`` seconds) until other processes use less than ``threshold`` of the CPUs.

    Args:
        max_wait: seconds to wait at most; 0 to only measure.
        threshold: busy fraction regarded as idle.

    Returns:
        the last measured busy fraction (``None`` where it cannot be measured).
    """
    deadline = time.monotonic() + max_wait
    busy = _cpu_busy_fraction()
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        busy = _cpu_busy_fraction()
    return busy


def _fmt(value: float) -> str:
    """Three significant digits, at least two decimals."""
    return f"{value:.{max(2, 2 - math.floor(math.log10(abs(value))))}f}" if value else "0"


def _git_revision() -> str:
    """Short commit of the repository holding this file, with ``+dirty`` when ``monai_semgan`` has local edits."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "monai_semgan"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def _markdown_table(results: list[dict[str, Any]]) -> str:
    base = {(r["config"], r["batch"]): r for r in results if r["impl"] == "baseline"}
    lines = [
        "| impl | config | batch | train img/s (amortized) | train img/s (plain) | train img/s (R1+PL) "
        "| G forward img/s | peak memory MB | speed-up vs baseline (train / G fwd) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ips = r["img_per_s"]
        amortized = _fmt(ips["amortized"]) + ("" if r["amortized_measured"] else " (est.)")
        ref = base.get((r["config"], r["batch"]))
        speedup = (
            f"{ips['amortized'] / ref['img_per_s']['amortized']:.2f}x / "
            f"{ips['g_forward'] / ref['img_per_s']['g_forward']:.2f}x"
            if ref is not None
            else "-"
        )
        lines.append(
            f"| {r['impl']} | {r['config']} {CONFIGS[r['config']]['generator']['resolution']}px | {r['batch']} "
            f"| {amortized} | {_fmt(ips['plain'])} | {_fmt(ips['all_reg'])} | {_fmt(ips['g_forward'])} "
            f"| {r['peak_memory_mb']:.0f} | {speedup} |"
        )
    return "\n".join(lines)


def _phase_table(results: list[dict[str, Any]]) -> str:
    lines = ["| impl | " + " | ".join(PHASES) + " |", "|---|" + "---:|" * len(PHASES)]
    for r in results:
        cells = " | ".join(f"{r['phase_seconds_per_event'][p] * 1000:.0f}" for p in PHASES)
        lines.append(f"| {r['impl']} | {cells} |")
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--impls", default=None, help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--batch", type=int, default=None, help="B (labeled and unlabeled each)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (a multiple of 16 amortizes exactly)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (the first carries R1 + PL)")
    parser.add_argument("--fwd-iters", type=int, default=None, help="timed generator forwards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="run every impl this many times (round robin) and keep its fastest run"
    )
    parser.add_argument("--check", action="store_true", help="first check that the baseline reproduces our nets")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="CPU runs: before each worker, wait up to this many seconds for other processes to leave the CPUs idle",
    )
    parser.add_argument("--profile", type=int, default=0, help="profile this many steps per impl instead of timing")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--worker", choices=IMPLS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch, steps, warmup, fwd_iters = DEFAULTS[(args.config, args.device)]
    args.batch = args.batch or batch
    args.steps = args.steps or steps
    args.warmup = warmup if args.warmup is None else args.warmup
    args.fwd_iters = args.fwd_iters or fwd_iters
    if args.impls is None:
        args.impls = "ours,ours-ref,ours-fused,baseline" if args.device == "cuda" else "ours,ours-fused,baseline"
    args.impl_list = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = sorted(set(args.impl_list) - set(IMPLS))
    if unknown:
        parser.error(f"unknown impls {unknown}; choose from {IMPLS}")
    return args


def _worker_argv(args: argparse.Namespace, impl: str) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--config", args.config]
    argv += ["--device", args.device, "--batch", str(args.batch), "--steps", str(args.steps)]
    argv += ["--warmup", str(args.warmup), "--fwd-iters", str(args.fwd_iters), "--seed", str(args.seed)]
    if args.profile:
        argv += ["--profile", str(args.profile), "--profile-rows", str(args.profile_rows)]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point: run every implementation in its own subprocess and print the tables.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        the exit status.
    """
    args = _parse_args(argv)
    if args.worker is not None:
        if args.profile:
            run_profile(args)
        else:
            print("RESULT " + json.dumps(run_worker(args)), flush=True)
        return 0

    print(
        f"monai_semgan {_git_revision()}, torch {torch.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU threads, device {args.device}, "
        f"config {args.config}, B={args.batch}, warmup {args.warmup}, timed steps {args.steps}, "
        f"G forwards {args.fwd_iters}",
        flush=True,
    )
    if args.check:
        torch.set_num_threads(os.cpu_count() or 1)
        generator, image_d, _ = build_networks(args.config, "ours", torch.device(args.device), args.seed)
        for fused in (False, True):
            for layer in generator.modules():
                if hasattr(layer, "fused"):
                    layer.fused = fused
            diffs = check_baseline(generator, image_d, batch_size=2, seed=args.seed)
            print(f"check: baseline == ours (fused_modconv={fused}), max differences {diffs}", flush=True)
        del generator, image_d
    if args.device == "cpu" and "ours-ref" in args.impl_list:
        print("note: on CPU 'ours-ref' runs exactly the code of 'ours' (the CUDA ops only apply to GPU tensors)")

    best: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[float]] = defaultdict(list)
    repeats = 1 if args.profile else args.repeats
    for repeat in range(repeats):
        # round robin, so that a burst of load elsewhere hits every implementation alike
        for impl in args.impl_list:
            env = dict(os.environ)
            if impl == "ours-ref":
                env["MONAI_SEMGAN_CUDA_OPS"] = "0"
            busy = _wait_for_idle(args.wait_idle) if args.device == "cpu" else None
            proc = subprocess.run(_worker_argv(args, impl), env=env, stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(proc.stdout)
                print(f"{impl}: worker failed with exit status {proc.returncode}", file=sys.stderr)
                return proc.returncode
            if args.profile:
                print(proc.stdout, flush=True)
                continue
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
            result = json.loads(line[len("RESULT ") :])
            result["cpu_busy_before"] = busy
            runs[impl].append(result["img_per_s"]["amortized"])
            print(
                f"run {repeat + 1}/{repeats} {impl}: {result['img_per_s']['amortized']:.2f} train img/s, "
                f"{result['img_per_s']['g_forward']:.1f} G forward img/s, CPU busy before start "
                f"{'-' if busy is None else f'{busy:.0%}'}, load average {result['load_average']}",
                flush=True,
            )
            if impl not in best or result["img_per_s"]["amortized"] > best[impl]["img_per_s"]["amortized"]:
                best[impl] = result
    if args.profile:
        return 0
    results = [best[impl] | {"amortized_img_per_s_all_runs": runs[impl]} for impl in args.impl_list]

    print()
    print(_markdown_table(results))
    print()
    print("milliseconds per phase (per step; R1 and path length per event):")
    print()
    print(_phase_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
