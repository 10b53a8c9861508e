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
"""float32 against bf16 (``amp``): speed of inference and inversion, and quality of a bf16-trained model.

``speed``: for one volume through the bundle's preprocessing and one segmenter (a trained model file, or the CPU
architecture freshly initialized), in the same process and round robin over ``--repeats``: the generator forward
(``--batch`` latents, no gradient), the encoder's quick mode over every slice of the volume, and ``--steps`` of batched
test-time optimization over every slice, each in float32 and in bf16 (``SemanticSegmenter(amp=...)``, the same code
``inference.json`` runs). Medians; ratios; and how far the bf16 masks are from the float32 ones (Dice).

``quality``: the bundle's default commands (``train.json`` on the phantom CT, ``train_encoder.json``), trained three
times (``--runs``, by default): float32 with seeds 0 and 1 (the spread of two seeds) and bf16 with seed 0 (same seed,
same images seen); other runs: the defaults as a user runs them (``auto-seed0/1``) and with the trainer's
``reuse_fakes`` (``auto-reuse-seed0/1``), so that a change to the training step is checked the same way; each
run's wall time recorded (the main command's time), then the label branch's statistics (share of generated pixels
labeled liver, share of samples with any liver, 256 samples) and 3-D Dice on the 10 CHAOS T2-SPIR volumes and on 4
held-out phantom CT volumes (quick mode, as ``evaluate.json``), and the sample grids of float32 and bf16 side by side.
Resumable: a finished step is not run again (``done.json`` in its folder).

    python -m benchmarks.precision speed --model runs/precision/fp32-seed0/encoder/models/model.pt --repeats 3
    python -m benchmarks.precision quality --out runs/precision --figure docs/figures/precision_samples.png
    python -m benchmarks.precision quality --out runs/precision --runs auto-seed0 auto-seed1 auto-reuse-seed0 \
        --figure docs/figures/reuse_fakes_samples.png --figure_runs auto-seed0 auto-reuse-seed0
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.inversion import timed
from benchmarks.quality import ROOT, bundle, run_step
from monai_semgan.data import volume_preprocessing
from monai_semgan.engines import autocast, cpu_has_native_bf16, resolve_amp
from monai_semgan.networks import LatentEncoder, SemanticGenerator, load_model
from monai_semgan.segmentation import SemanticSegmenter

PRECISIONS = ("off", "bf16")
# name: (amp of the GAN, the encoder and the evaluation; seed; extra train.json options)
RUNS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "fp32-seed0": ("off", 0, ()),
    "fp32-seed1": ("off", 1, ()),
    "bf16-seed0": ("bf16", 0, ()),
    # the bundle's defaults as a user runs them (auto: bf16 GAN, float32 encoder on a CPU with native bf16)
    "auto-seed0": ("auto", 0, ()),
    "auto-seed1": ("auto", 1, ()),
    # the trainer's reuse_fakes: one generator forward per iteration instead of three
    "auto-reuse-seed0": ("auto", 0, ("--reuse_fakes", "true")),
    "auto-reuse-seed1": ("auto", 1, ("--reuse_fakes", "true")),
}
DEFAULT_RUNS = ("fp32-seed0", "fp32-seed1", "bf16-seed0")
SHARED = ROOT.parent / "shared" / "data"


def _segmenter(model: str) -> SemanticSegmenter:
    if model:
        return load_model(model, perceptual="ssim").eval()
    from benchmarks.train_step import CONFIGS

    torch.manual_seed(0)
    g = SemanticGenerator(**CONFIGS["cpu"]["generator"])
    encoder = LatentEncoder(
        g.resolution, g.num_ws, g.w_dim, g.image_channels, g.channel_base, g.channel_multiplier, g.channel_max
    )
    return SemanticSegmenter(g, encoder, perceptual="ssim").eval()


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Time the three workloads in float32 and bf16, round robin; returns the medians, ratios and mask agreement."""
    net = _segmenter(args.model)
    g = net.generator
    item = volume_preprocessing(args.modality, net.resolution)({"image": args.volume})
    slices = item["image"].as_tensor().permute(3, 0, 1, 2).contiguous()  # [D, 1, R, R]
    net.inverter.chunk_size = slices.shape[0]  # every slice of the volume optimized together
    z = torch.randn(args.batch, g.z_dim, generator=torch.Generator().manual_seed(0))
    times: dict[str, dict[str, list[float]]] = {p: {"g_forward": [], "quick": [], "optimize": []} for p in PRECISIONS}
    logits: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PRECISIONS}
    net.inverter.steps = 0
    for precision in PRECISIONS:  # one untimed call each: first-call allocations and oneDNN primitive creation
        net.amp = precision
        with torch.no_grad():
            net(slices)
    for repeat in range(args.repeats):
        for precision in PRECISIONS:
            dtype = resolve_amp(precision, "cpu")
            with torch.no_grad(), autocast("cpu", dtype):
                g(z, mixing_prob=0.0)  # warm-up
                t, _ = timed(lambda: g(z, mixing_prob=0.0))
            times[precision]["g_forward"].append(t)
            net.amp = precision
            net.inverter.steps = 0
            with torch.no_grad():
                t, out = timed(lambda: net(slices))
            times[precision]["quick"].append(t)
            logits[precision]["quick"] = out
            net.inverter.steps = args.steps
            t, out = timed(lambda: net(slices))
            times[precision]["optimize"].append(t)
            logits[precision]["optimize"] = out
            print(
                f"repeat {repeat + 1}, {precision}: "
                + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times[precision].items()),
                flush=True,
            )
    medians = {p: {k: statistics.median(v) for k, v in times[p].items()} for p in PRECISIONS}
    return {
        "volume": args.volume,
        "slices": int(slices.shape[0]),
        "resolution": net.resolution,
        "steps": args.steps,
        "batch": args.batch,
        "model": args.model or "fresh CPU architecture",
        "medians_s": medians,
        "ratios": {k: medians["off"][k] / medians["bf16"][k] for k in medians["off"]},
        "mask_dice_bf16_vs_fp32": {k: _dice(logits["bf16"][k], logits["off"][k]) for k in ("quick", "optimize")},
    }


def speed_table(result: dict[str, Any]) -> str:
    m, r = result["medians_s"], result["ratios"]
    rows = [
        ("generator forward", f"{result['batch']} latents", "g_forward", lambda s: f"{result['batch'] / s:.1f} img/s"),
        ("quick mode", f"{result['slices']} slices", "quick", lambda s: f"{s:.3f} s / volume"),
        (f"optimize, {result['steps']} steps, batched", f"{result['slices']} slices", "optimize",
         lambda s: f"{s:.1f} s / volume"),
    ]  # fmt: skip
    lines = [
        "| workload | size | float32 | bf16 | bf16 speed-up | bf16 mask vs float32 (Dice) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, size, key, fmt in rows:
        agreement = result["mask_dice_bf16_vs_fp32"].get(key)
        lines.append(
            f"| {name} | {size} | {fmt(m['off'][key])} | {fmt(m['bf16'][key])} | {r[key]:.2f}x "
            f"| {'-' if agreement is None else f'{agreement:.3f}'} |"
        )
    return "\n".join(lines)


@torch.no_grad()
def label_statistics(generator_file: Path, samples: int = 256, seed: int = 0) -> dict[str, float]:
    """Share of generated pixels labeled liver and share of samples with any liver (float32 generator)."""
    g = load_model(generator_file).eval()
    torch.manual_seed(seed)
    _, logits = g(torch.randn(samples, g.z_dim))
    mask = logits[:, 0] > 0
    return {
        "liver_pixels": float(mask.float().mean()),
        "samples_with_liver": float(mask.flatten(1).any(1).float().mean()),
    }


def _mean_dice(csv_path: Path) -> tuple[float, float]:
    rows = {r["case"]: r for r in csv.DictReader(csv_path.open(encoding="utf-8"))}
    return float(rows["mean"]["dice"]), float(rows["std"]["dice"])


def quality(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train, evaluate and summarize the runs ``args.runs`` names (see the module docstring)."""
    unknown = sorted(set(args.runs) - set(RUNS))
    if unknown:
        raise ValueError(f"unknown runs {unknown}; known: {sorted(RUNS)}.")
    out = Path(args.out).resolve()
    phantom = out / "heldout_phantom"
    if not (phantom / "ct").is_dir():
        subprocess.run(
            [sys.executable, "-m", "monai_semgan.data.phantom", "--out", str(phantom), "--cases", "4", "--seed", "123",
             "--modalities", "ct"], check=True, cwd=ROOT,
        )  # fmt: skip
    rows = []
    for name in args.runs:
        precision, seed, gan_options = RUNS[name]
        run = out / name
        print(f"{name}:", flush=True)
        common = ["--amp", precision, "--seed", str(seed)]
        gan_cmd = bundle("training", ["train.json"], "--output_dir", str(run / "train"), *common, *gan_options)
        gan_s = run_step("GAN (train.json defaults)", gan_cmd, run / "train")
        enc_cmd = bundle(
            "training", ["train.json", "train_encoder.json"], "--gan_dir", str(run / "train"),
            "--output_dir", str(run / "encoder"), *common,
        )  # fmt: skip
        enc_s = run_step("encoder (train_encoder.json defaults)", enc_cmd, run / "encoder")
        row: dict[str, Any] = {
            "run": name,
            "amp": precision,
            "seed": seed,
            "gan_min": gan_s / 60,
            "encoder_min": enc_s / 60,
        }
        for set_name, data, modality, labels in (
            ("chaos_t2", SHARED / "chaos_t2spir", "mri", "1"),
            ("phantom_ct", phantom / "ct", "ct", "chaos"),
        ):
            folder = run / "eval" / set_name
            eval_cmd = bundle(
                "evaluating", ["inference.json", "evaluate.json"], "--dataset_dir", str(data), "--output_dir",
                str(folder), "--model_path", str(run / "encoder" / "models" / "model.pt"), "--modality", modality,
                "--label_values", labels, "--amp", precision,
            )  # fmt: skip
            run_step(f"evaluate {set_name}", eval_cmd, folder)
            row[f"dice_{set_name}"], row[f"std_{set_name}"] = _mean_dice(folder / "dice.csv")
        row.update(label_statistics(run / "train" / "models" / "model.pt"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.figure:
        side_by_side(out, Path(args.figure), args.figure_runs)
    return rows


def side_by_side(out: Path, figure: Path, runs: Sequence[str] = ("fp32-seed0", "bf16-seed0")) -> None:
    """The last sample grids of two runs (by default the float32 and bf16 seed-0 runs), side by side, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_semgan.atomic_write import atomic_path

    panels = []
    for name in runs:
        grids = sorted((out / name / "train" / "samples").glob("iter_*.png"))
        panels.append((name, plt.imread(grids[-1]), grids[-1].stem))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    axes = axes[0]
    for ax, (name, image, stem) in zip(axes, panels):
        ax.imshow(image)
        ax.set_title(f"{name}, iteration {int(stem.split('_')[-1])} (image | image + generated liver)")
        ax.axis("off")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(figure, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    print(f"figure: {figure}", flush=True)


def quality_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| run | amp | seed | GAN min | encoder min | generated liver pixels | samples with liver "
        "| CHAOS T2 Dice (std) | phantom CT Dice (std) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['amp']} | {r['seed']} | {r['gan_min']:.1f} | {r['encoder_min']:.1f} "
            f"| {r['liver_pixels']:.1%} | {r['samples_with_liver']:.0%} "
            f"| {r['dice_chaos_t2']:.3f} ({r['std_chaos_t2']:.3f}) "
            f"| {r['dice_phantom_ct']:.3f} ({r['std_phantom_ct']:.3f}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    s = sub.add_parser("speed", help="inference and inversion speed, float32 against bf16")
    s.add_argument("--model", default="", help="segmenter model file; none: the CPU architecture, freshly initialized")
    s.add_argument("--volume", default=str(SHARED / "chaos_t2spir" / "image_1.nii.gz"))
    s.add_argument("--modality", default="mri")
    s.add_argument("--steps", type=int, default=100)
    s.add_argument("--batch", type=int, default=8, help="latents per generator forward")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--json", default="")
    q = sub.add_parser("quality", help="train the default commands (--runs), compare label statistics and Dice")
    q.add_argument("--out", default="runs/precision")
    q.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help=f"any of {', '.join(RUNS)}")
    q.add_argument("--figure", default="", help="write the sample grids of --figure_runs side by side here")
    q.add_argument("--figure_runs", nargs="+", default=["fp32-seed0", "bf16-seed0"])
    q.add_argument("--json", default="")
    args = parser.parse_args(argv)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} torch threads, CPU native bf16: "
        f"{cpu_has_native_bf16()}",
        flush=True,
    )
    if args.part == "speed":
        result = speed(args)
        print(speed_table(result), flush=True)
    else:
        result = quality(args)
        print(quality_table(result), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(result, indent=2, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
        )


if __name__ == "__main__":
    main()
