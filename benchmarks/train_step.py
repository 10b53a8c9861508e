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
"""Speed of SemanticGAN training iterations through the shipped engine: monai_semgan against a StyleGAN2 baseline.

The timed unit is one iteration of :class:`monai_semgan.engines.SemanticGanTrainer`, the engine the bundle trains with,
built as ``bundles/liver_ct/configs/train.json`` builds it (``--config cpu``; ``--config paper`` follows
``train_paper.json``): the generator, image and joint discriminators, :func:`~monai_semgan.engines.lazy_adam`
optimizers, the config's loss weights and lazy-regularization intervals (R1 every 16 iterations, path length every 4;
the CPU config sets the joint discriminator's R1 weight to 0, the paper config to 10). No handler is attached: no
checkpoints, TensorBoard, sample grids or progress bar. The engine's :class:`~monai_semgan.engines.PairedSliceLoader`
cycles one fixed in-memory batch (``B`` unlabeled images, ``B`` labeled image-mask pairs), so loading data costs
next to nothing and the time is the engine's: what ``engine.run`` spends per iteration.

Each run builds a fresh engine (same seed, same weights for every implementation), runs ``--warmup`` untimed
iterations and then ``--steps`` timed ones in the same ``engine.run``. Ignite's ``ITERATION_STARTED`` and
``ITERATION_COMPLETED`` events time every iteration (with a CUDA synchronization on a GPU) and the whole timed window
from the first timed iteration's start to the last one's end. Any 16 consecutive iterations hold one R1 step and four
path-length steps, so with ``--steps`` a multiple of 16 the window divided by the steps is the **amortized** seconds
per iteration, measured; otherwise it is estimated from the medians of the three kinds of iteration as
``(12 plain + 3 path-length + 1 R1-and-path-length) / 16`` and marked "(est.)". The kinds are reported too: **plain**
(no regularizer), **+PL** (path length), **+R1+PL** (both).

**img/s** is ``B`` (generated images per iteration, as in StyleGAN2's convention; each iteration also reads ``2 B`` real
images) divided by the seconds per iteration. **G forward** is the engine's generator called on ``B`` latents without
gradient (no mixing), the fastest of ``--fwd-iters`` calls after one untimed call.

Everything runs in one process, implementation after implementation, round robin over ``--repeats`` (so that a burst
of load elsewhere hits every implementation alike); the table shows each implementation's median over the repeats,
and the ratios to the baseline measured in the same process. On CPU each run first waits (``--wait-idle``) for other
processes to leave the CPUs idle. Peak memory is reported on a GPU only (``torch.cuda.max_memory_allocated``, reset
before each run): on CPU one process's resident set holds what every earlier run allocated.

Implementations (``--impls``):

* ``ours``: monai_semgan in float32 (non-fused modulated convolution, ops ``impl=None``: CUDA kernels on a GPU);
* ``ours-bf16``: the same engine with ``amp="bf16"`` (bf16 autocast; the regularizers' passes, the mapping network,
  the modulation and the losses stay float32): what ``amp="auto"``, the bundle's default, runs on a CPU with native
  bf16 (AVX512-BF16 / AMX) or a bf16-capable GPU;
* ``ours-bf16-cl``: ``ours-bf16`` with the networks in ``channels_last`` memory format;
* ``ours-bf16-foreach``, ``ours-bf16-fusedadam``: ``ours-bf16`` with Adam's ``foreach`` or ``fused`` implementation
  (PyTorch's CPU default is a loop over the parameters);
* ``ours-bf16-fresh``, ``ours-bf16-reuse``: ``ours-bf16`` with the trainer's ``reuse_fakes`` off (fresh latents for
  each of the three steps, three generator forwards) or on (one generator forward, its images detached for the
  discriminator steps), whatever the bundle sets;
* ``ours-fused``: the same networks with ``fused_modconv=True``;
* ``ours-ref``: ``ours`` with the compiled ops switched off (PyTorch reference ops); identical to ``ours`` on CPU;
* ``baseline``: the same engine with the generator and image discriminator replaced by
  :mod:`benchmarks.stylegan2_baseline`, the straightforward StyleGAN2 port with the same weights (the joint
  discriminator is plain PyTorch and the same on both sides).

Run from the repository root::

    python -m benchmarks.train_step --config cpu --check
    python -m benchmarks.train_step --config cpu --batch 8 --steps 16 --repeats 3
    python -m benchmarks.train_step --config paper --impls ours,baseline --steps 1 --warmup 1
    python -m benchmarks.train_step --config paper --device cuda --impls ours,ours-ref,ours-fused,baseline
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser
from torch.utils.data import DataLoader

from benchmarks.stylegan2_baseline import check_baseline, make_baseline
from monai_semgan.engines import PairedSliceLoader, SemanticGanTrainer, autocast, lazy_adam
from monai_semgan.networks import ImageDiscriminator, JointDiscriminator, SemanticGenerator

__all__ = [
    "CONFIGS",
    "IMPLS",
    "IterationTimer",
    "aggregate",
    "build_networks",
    "build_trainer",
    "fixed_batches",
    "iteration_kind",
    "main",
    "markdown_table",
    "run_once",
    "summarize_timer",
    "time_generator_forward",
]

IMPLS = (
    "ours",
    "ours-bf16",
    "ours-bf16-cl",
    "ours-bf16-foreach",
    "ours-bf16-fusedadam",
    "ours-bf16-fresh",
    "ours-bf16-reuse",
    "ours-fused",
    "ours-ref",
    "baseline",
)
BUNDLE_CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "liver_ct" / "configs"
# the trainer settings the benchmark takes from the bundle, besides the three networks' architectures
TRAINER_KEYS = (
    "mixing_prob",
    "r1_gamma",
    "joint_r1_gamma",
    "r1_interval",
    "pl_weight",
    "pl_interval",
    "feature_matching_weight",
    "ema_half_life_images",
    "ema_rampup",
    "diff_augment",
    "reuse_fakes",
)


def bundle_settings(config: str) -> dict[str, dict[str, Any]]:
    """The networks' constructor arguments and the trainer's settings of ``train.json`` (``"cpu"``) or ``train.json``
    + ``train_paper.json`` (``"paper"``), read from the bundle, so the benchmark times what the bundle trains."""
    files = ["train.json"] + (["train_paper.json"] if config == "paper" else [])
    parser = ConfigParser()
    parser.read_config([str(BUNDLE_CONFIGS / f) for f in files])
    parser["bundle_root"] = str(BUNDLE_CONFIGS.parent)

    return {
        "generator": parser.get_parsed_content("generator_architecture#args"),
        "image_discriminator": parser.get_parsed_content("image_discriminator_architecture#args"),
        "joint_discriminator": parser.get_parsed_content("joint_discriminator_architecture#args"),
        "trainer": {k: parser.get_parsed_content(k) for k in TRAINER_KEYS},
        "learning_rate": {"lr": parser.get_parsed_content("learning_rate")},
    }


CONFIGS: dict[str, dict[str, dict[str, Any]]] = {name: bundle_settings(name) for name in ("cpu", "paper")}
# per (config, device): batch, timed iterations, warm-up iterations, generator forward calls
DEFAULTS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("cpu", "cpu"): (8, 16, 4, 10),
    ("paper", "cpu"): (2, 1, 1, 2),
    ("cpu", "cuda"): (16, 64, 16, 50),
    ("paper", "cuda"): (16, 32, 16, 20),
}
KINDS = ("plain", "pl", "r1_pl")


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
    layout = torch.channels_last if impl.endswith("-cl") else torch.contiguous_format
    nets = tuple(net.to(device, memory_format=layout) for net in (generator, image_d, joint_d))
    return nets  # type: ignore[return-value]


def impl_amp(impl: str, amp: bool) -> str:
    """The engine's ``amp`` for ``impl``: bf16 for the ``-bf16`` implementations, else ``--amp`` (bf16) or off."""
    return "bf16" if "bf16" in impl or amp else "off"


def fixed_batches(generator: SemanticGenerator, batch: int, seed: int = 0) -> tuple[dict, dict]:
    """One unlabeled batch (``image``) and one labeled batch (``image``, ``label``) as the slice loaders deliver them:
    ``[B, C, R, R]`` images in [-1, 1], ``[B, 1, R, R]`` masks of 0 and 1.

    Args:
        generator: the generator whose resolution and channels the batches match.
        batch: ``B``.
        seed: seed of the random contents.

    Returns:
        ``(unlabeled, labeled)``.
    """
    res, channels = generator.resolution, generator.image_channels
    gen = torch.Generator().manual_seed(seed + 1)
    unlabeled = {"image": torch.rand(batch, channels, res, res, generator=gen) * 2 - 1}
    labeled = {
        "image": torch.rand(batch, channels, res, res, generator=gen) * 2 - 1,
        "label": (torch.rand(batch, 1, res, res, generator=gen) > 0.5).float(),
    }
    return unlabeled, labeled


def build_trainer(
    config: str,
    impl: str,
    batch: int,
    device: torch.device,
    iterations: int,
    seed: int = 0,
    amp: bool = False,
    joint_r1_gamma: float | None = None,
) -> SemanticGanTrainer:
    """The shipped engine for ``config`` and ``impl``, with no handlers, running ``iterations`` iterations (one epoch)
    over one fixed in-memory batch.

    Args:
        config: ``"cpu"`` or ``"paper"``.
        impl: one of :data:`IMPLS`.
        batch: ``B``, labeled and unlabeled each.
        device: the training device.
        iterations: iterations of one ``engine.run()``.
        seed: seed of weights and data.
        amp: ``--amp``: bf16 autocast for every implementation (the ``-bf16`` ones have it anyway).
        joint_r1_gamma: the joint discriminator's R1 weight instead of the config's.

    Returns:
        the engine; ``engine.run()`` runs it.
    """
    cfg = CONFIGS[config]
    generator, image_d, joint_d = build_networks(config, impl, device, seed)
    unlabeled, labeled = fixed_batches(generator, batch, seed)
    # batch_size=None: the loaders yield the stored batch itself, every time
    loader = PairedSliceLoader(
        DataLoader([unlabeled], batch_size=None), DataLoader([labeled], batch_size=None), iterations, seed=seed
    )
    settings = dict(cfg["trainer"])
    if joint_r1_gamma is not None:
        settings["joint_r1_gamma"] = joint_r1_gamma
    if impl.endswith(("-fresh", "-reuse")):
        settings["reuse_fakes"] = impl.endswith("-reuse")
    lr = cfg["learning_rate"]["lr"]
    adam = {"ours-bf16-foreach": "foreach", "ours-bf16-fusedadam": "fused"}.get(impl)
    trainer = SemanticGanTrainer(
        device=device,
        max_epochs=1,
        data_loader=loader,
        generator=generator,
        image_discriminator=image_d,
        joint_discriminator=joint_d,
        g_optimizer=lazy_adam(generator.parameters(), lr=lr, interval=settings["pl_interval"], implementation=adam),
        d_image_optimizer=lazy_adam(image_d.parameters(), lr=lr, interval=settings["r1_interval"], implementation=adam),
        d_joint_optimizer=lazy_adam(joint_d.parameters(), lr=lr, interval=settings["r1_interval"], implementation=adam),
        amp=impl_amp(impl, amp),
        **settings,
    )
    return trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class IterationTimer:
    """Times every iteration of an Ignite engine from ``ITERATION_STARTED`` to ``ITERATION_COMPLETED``, and the window
    from the start of iteration ``first`` to the end of the last one.

    Args:
        first: the first timed iteration (Ignite counts from 1); earlier ones are warm-up.
        device: synchronized before each reading on a GPU.
    """

    first: int
    device: torch.device
    seconds: dict[int, float] = field(default_factory=dict, init=False)
    window_start: float | None = field(default=None, init=False)
    window_end: float | None = field(default=None, init=False)
    _start: float = field(default=0.0, init=False, repr=False)

    def attach(self, engine: Engine) -> None:
        """Add the two handlers to ``engine``."""
        engine.add_event_handler(Events.ITERATION_STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        _sync(self.device)
        self._start = time.perf_counter()
        if engine.state.iteration == self.first:
            self.window_start = self._start

    def _completed(self, engine: Engine) -> None:
        _sync(self.device)
        now = time.perf_counter()
        if engine.state.iteration >= self.first:
            self.seconds[engine.state.iteration] = now - self._start
            self.window_end = now

    @property
    def window(self) -> float:
        """Seconds from the start of the first timed iteration to the end of the last."""
        if self.window_start is None or self.window_end is None:
            raise RuntimeError("no timed iteration ran.")
        return self.window_end - self.window_start


def iteration_kind(iteration: int, r1_interval: int, pl_interval: int) -> str:
    """``"r1_pl"``, ``"pl"`` or ``"plain"``: the regularizers the engine runs in ``iteration`` (counted from 1).

    Args:
        iteration: the iteration.
        r1_interval: the engine's R1 interval (a multiple of ``pl_interval`` in both configs).
        pl_interval: the engine's path-length interval.

    Returns:
        the kind.
    """
    if r1_interval and iteration % r1_interval == 0:
        return "r1_pl"
    return "pl" if pl_interval and iteration % pl_interval == 0 else "plain"


def summarize_timer(timer: IterationTimer, r1_interval: int, pl_interval: int) -> dict[str, Any]:
    """Seconds per iteration of a run: amortized (measured over whole 16-iteration cycles, else estimated) and per kind.

    Args:
        timer: the run's timer.
        r1_interval: the engine's R1 interval.
        pl_interval: the engine's path-length interval.

    Returns:
        ``s_per_it`` (amortized), ``amortized_measured``, ``window_s``, and the median seconds of each kind of
        iteration timed (``plain``, ``pl``, ``r1_pl``; ``None`` where none ran).
    """
    steps = len(timer.seconds)
    by_kind: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for iteration, seconds in timer.seconds.items():
        by_kind[iteration_kind(iteration, r1_interval, pl_interval)].append(seconds)
    kinds = {kind: statistics.median(v) if v else None for kind, v in by_kind.items()}
    cycle = math.lcm(max(r1_interval, 1), max(pl_interval, 1))
    measured = steps % cycle == 0
    if measured:
        amortized = timer.window / steps
    else:
        # (cycle - cycle / pl) plain, (cycle / pl - cycle / r1) path-length-only and cycle / r1 R1 iterations
        n_r1 = cycle // r1_interval if r1_interval else 0
        n_pl = (cycle // pl_interval if pl_interval else 0) - n_r1
        counts = {"plain": cycle - n_pl - n_r1, "pl": n_pl, "r1_pl": n_r1}
        known = {k: v for k, v in kinds.items() if v is not None}
        # a kind that was not timed takes the time of the next lighter kind that was (a lower estimate)
        fill = known.get("plain") or known.get("pl") or known.get("r1_pl")
        values = {"plain": fill, "pl": known.get("pl", fill), "r1_pl": known.get("r1_pl", known.get("pl", fill))}
        amortized = sum(counts[k] * values[k] for k in KINDS) / cycle
    return {"s_per_it": amortized, "amortized_measured": measured, "window_s": timer.window, **kinds}


@torch.no_grad()
def time_generator_forward(
    generator: torch.nn.Module, batch: int, calls: int, device: torch.device, dtype: torch.dtype | None = None
) -> float:
    """Seconds of the fastest of ``calls`` generator forwards (``batch`` latents, no mixing, no gradient) after one
    untimed call.

    Args:
        generator: the generator.
        batch: latents per call.
        calls: timed calls.
        device: its device.
        dtype: autocast dtype (``None``: float32).

    Returns:
        seconds.
    """
    z = torch.randn(batch, generator.z_dim, device=device)
    with torch.no_grad(), autocast(device, dtype):
        generator(z, mixing_prob=0.0)
        best = math.inf
        for _ in range(max(calls, 1)):
            _sync(device)
            start = time.perf_counter()
            generator(z, mixing_prob=0.0)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def _ops_for(impl: str) -> Iterator[None]:
    """``ours-ref``: the compiled ops switched off for the duration; other implementations: as they are.

    The ops read ``MONAI_SEMGAN_CUDA_OPS`` once per process; switching them off for one implementation in the same
    process sets the lazily built extension aside in :mod:`monai_semgan.ops.cuda_extension`'s cache and restores it.
    """
    if impl != "ours-ref":
        yield
        return
    from monai_semgan.ops import cuda_extension

    cuda_extension.cuda_ops_or_none()  # settle the lazy build first
    saved = dict(cuda_extension._state)
    cuda_extension._state.update(tried=True, module=None)
    try:
        if cuda_extension.cuda_ops_or_none() is not None:
            raise RuntimeError("could not switch the compiled ops off for ours-ref.")
        yield
    finally:
        cuda_extension._state.update(saved)


def run_once(args: argparse.Namespace, impl: str) -> dict[str, Any]:
    """Build the engine for ``impl``, run warm-up and timed iterations through ``engine.run``, time the generator.

    Args:
        args: parsed arguments.
        impl: one of :data:`IMPLS`.

    Returns:
        the run's measurements.
    """
    device = torch.device(args.device)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    with _ops_for(impl):
        trainer = build_trainer(
            args.config, impl, args.batch, device, args.warmup + args.steps, args.seed, args.amp, args.joint_r1_gamma
        )
        timer = IterationTimer(first=args.warmup + 1, device=device)
        timer.attach(trainer)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        trainer.run()
        run_s = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        fwd = time_generator_forward(trainer.generator, args.batch, args.fwd_iters, device, trainer.amp_dtype)
    result = summarize_timer(timer, trainer.r1_interval, trainer.pl_interval)
    result.update(
        impl=impl,
        config=args.config,
        batch=args.batch,
        run_s=run_s,
        g_forward_s=fwd,
        peak_memory_mb=peak,
        load_average=[load, os.getloadavg()[0]],
        losses=dict(trainer.state.output or {}),
    )
    return result


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


def _fmt(value: float | None) -> str:
    """Three significant digits, at least two decimals; ``-`` for ``None``."""
    if value is None:
        return "-"
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


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's runs reduced to medians (seconds per iteration of each kind, generator forward).

    Args:
        runs: the results of :func:`run_once` for one implementation.

    Returns:
        the first run's settings with every timing replaced by its median over ``runs``, ``img_per_s`` and
        ``s_per_it_all_runs``.
    """
    out = dict(runs[0])
    for key in ("s_per_it", "g_forward_s", "run_s", *KINDS):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    peaks = [r["peak_memory_mb"] for r in runs if r["peak_memory_mb"] is not None]
    out["peak_memory_mb"] = max(peaks) if peaks else None
    out["amortized_measured"] = all(r["amortized_measured"] for r in runs)
    out["s_per_it_all_runs"] = [r["s_per_it"] for r in runs]
    out["img_per_s"] = out["batch"] / out["s_per_it"]
    out["g_forward_img_per_s"] = out["batch"] / out["g_forward_s"]
    out["repeats"] = len(runs)
    return out


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table, with the ratios to float32 ``ours`` and to the baseline where they ran.

    Args:
        results: aggregated results (see :func:`aggregate`).

    Returns:
        the table.
    """
    refs = {name: next((r for r in results if r["impl"] == name), None) for name in ("ours", "baseline")}
    lines = [
        "| impl | config | batch | s/iteration (amortized) | img/s (amortized) | s/it plain | s/it +PL | s/it +R1+PL "
        "| G forward img/s | peak GPU memory MB | vs ours float32 (train / G fwd) | vs baseline (train / G fwd) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        est = "" if r["amortized_measured"] else " (est.)"
        ratios = [
            f"{ref['s_per_it'] / r['s_per_it']:.2f}x / {r['g_forward_img_per_s'] / ref['g_forward_img_per_s']:.2f}x"
            if ref is not None
            else "-"
            for ref in refs.values()
        ]
        memory = "-" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
        lines.append(
            f"| {r['impl']} | {r['config']} {CONFIGS[r['config']]['generator']['resolution']}px | {r['batch']} "
            f"| {_fmt(r['s_per_it'])}{est} | {_fmt(r['img_per_s'])}{est} | {_fmt(r['plain'])} | {_fmt(r['pl'])} "
            f"| {_fmt(r['r1_pl'])} | {_fmt(r['g_forward_img_per_s'])} | {memory} | {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(lines)


def run_profile(args: argparse.Namespace, impl: str) -> None:
    """Profile ``args.profile`` iterations of the engine after ``args.warmup`` (at least 1) untimed ones; print the
    table.

    Args:
        args: parsed arguments.
        impl: one of :data:`IMPLS`.
    """
    from torch.profiler import ProfilerActivity, profile, schedule

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    warmup = max(args.warmup, 1)  # the profiler's schedule needs at least one step before it records
    with _ops_for(impl):
        trainer = build_trainer(
            args.config, impl, args.batch, device, warmup + args.profile, args.seed, args.amp, args.joint_r1_gamma
        )
        with profile(activities=activities, schedule=schedule(wait=0, warmup=warmup, active=args.profile)) as prof:
            trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: prof.step())
            trainer.run()
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"## profile of {impl}, {args.config} config, B={args.batch}, {args.profile} iterations of the engine")
    print(prof.key_averages().table(sort_by=sort_by, row_limit=args.profile_rows, max_name_column_width=60))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--impls", default=None, help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--batch", type=int, default=None, help="B (labeled and unlabeled each)")
    parser.add_argument("--steps", type=int, default=None, help="timed iterations (a multiple of 16 amortizes exactly)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first, in the same engine.run")
    parser.add_argument("--fwd-iters", type=int, default=None, help="timed generator forwards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="run every impl this many times (round robin)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for every implementation")
    parser.add_argument(
        "--joint-r1-gamma", type=float, default=None, help="the joint discriminator's R1 weight instead of the config's"
    )
    parser.add_argument("--check", action="store_true", help="first check that the baseline reproduces our nets")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="CPU runs: before each run, wait up to this many seconds for other processes to leave the CPUs idle",
    )
    parser.add_argument("--profile", type=int, default=0, help="profile this many iterations per impl instead")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    batch, steps, warmup, fwd_iters = DEFAULTS[(args.config, args.device)]
    args.batch = args.batch or batch
    args.steps = args.steps or steps
    args.warmup = warmup if args.warmup is None else args.warmup
    args.fwd_iters = args.fwd_iters or fwd_iters
    if args.impls is None:
        args.impls = (
            "ours,ours-bf16,ours-ref,ours-fused,baseline"
            if args.device == "cuda"
            else "ours,ours-bf16,ours-bf16-cl,baseline"
        )
    args.impl_list = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = sorted(set(args.impl_list) - set(IMPLS))
    if unknown:
        parser.error(f"unknown impls {unknown}; choose from {IMPLS}")
    if min(args.batch, args.steps, args.repeats) < 1 or args.warmup < 0:
        parser.error("--batch, --steps and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: time every implementation through the engine, round robin, and print the table.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        the exit status.
    """
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(CONFIGS[args.config]["trainer"])
    if args.joint_r1_gamma is not None:
        settings["joint_r1_gamma"] = args.joint_r1_gamma
    print(
        f"monai_semgan {_git_revision()}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads ({os.cpu_count()} CPUs), device {args.device}"
        f"{', amp bf16' if args.amp else ''}; config {args.config}, B={args.batch} labeled + "
        f"{args.batch} unlabeled, warmup {args.warmup}, timed iterations {args.steps}, G forwards {args.fwd_iters}, "
        f"repeats {args.repeats}",
        flush=True,
    )
    print(f"engine: SemanticGanTrainer, no handlers; {json.dumps(settings)}", flush=True)
    if args.check:
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
    if args.device == "cuda" and "ours-ref" not in args.impl_list:
        from monai_semgan.ops import cuda_ops_or_none

        if cuda_ops_or_none() is None:
            print("note: CUDA ops unavailable: every implementation runs the reference ops", file=sys.stderr)

    if args.profile:
        for impl in args.impl_list:
            run_profile(args, impl)
        return 0

    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in args.impl_list}
    for repeat in range(args.repeats):
        for impl in args.impl_list:  # round robin: a burst of load elsewhere hits every implementation alike
            busy = _wait_for_idle(args.wait_idle) if args.device == "cpu" else None
            result = run_once(args, impl)
            result["cpu_busy_before"] = busy
            runs[impl].append(result)
            print(
                f"run {repeat + 1}/{args.repeats} {impl}: {_fmt(result['s_per_it'])} s/iteration"
                f"{'' if result['amortized_measured'] else ' (est.)'} ({_fmt(args.batch / result['s_per_it'])} img/s), "
                f"engine.run {result['run_s']:.1f} s for {args.warmup + args.steps} iterations, "
                f"G forward {_fmt(args.batch / result['g_forward_s'])} img/s; CPU busy before start "
                f"{'-' if busy is None else f'{busy:.0%}'}, load average {result['load_average']}",
                flush=True,
            )
    results = [aggregate(runs[impl]) for impl in args.impl_list]
    print()
    print(f"medians over {args.repeats} run(s) per implementation; seconds per iteration of the engine:")
    print()
    print(markdown_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "runs": runs}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
