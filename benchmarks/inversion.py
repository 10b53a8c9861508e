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
"""Inversion speed and Dice against optimization steps.

Part 1, speed: seconds per volume for one CHAOS case (256 x 256 x ~36 slices) through the bundle's preprocessing, in
quick mode (encoder only) and optimize mode, with every slice of the volume optimized together ("batched") against
one slice at a time (the official code's way), same steps, in the same process; and how far apart the two results
are (largest difference of the label probability, Dice between the two masks).

Part 2, quality: 3-D Dice (on the input grid, as evaluate.json measures it) of the volumes of a labeled folder against
the number of optimization steps, written as a CSV and plotted (``--plot``).

    python -m benchmarks.inversion --model bundles/liver_ct/runs/encoder/models/model.pt \
        --volume ../shared/data/chaos_t2spir/image_1.nii.gz --steps 100 \
        --dice_dir ../shared/data/chaos_t2spir --dice_steps 0 25 50 100 200 \
        --csv docs/figures/dice_vs_steps.csv --plot docs/figures/dice_vs_steps.png

The architecture flags must match the model's (the bundle's defaults are the script's).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import decollate_batch, list_data_collate
from monai.inferers import SliceInferer
from monai.metrics import compute_dice

from benchmarks.train_step import CONFIGS
from monai_semgan.data import volume_preprocessing
from monai_semgan.networks import LatentEncoder, SemanticGenerator, load_model
from monai_semgan.segmentation import SemanticSegmenter, labeled_volumes, segmentation_postprocessing


def build_segmenter(args: argparse.Namespace) -> SemanticSegmenter:
    """The segmenter of ``--model`` (architecture and weights from its file), or, without one, a freshly initialized
    segmenter of the bundle's CPU architecture (``train.json``) for speed alone."""
    if args.model:
        net = load_model(args.model, perceptual=args.perceptual)
    else:
        generator = SemanticGenerator(**CONFIGS["cpu"]["generator"])
        g = generator
        encoder = LatentEncoder(
            g.resolution, g.num_ws, g.w_dim, g.image_channels, g.channel_base, g.channel_multiplier, g.channel_max
        )
        net = SemanticSegmenter(generator, encoder, perceptual=args.perceptual)
    args.resolution = net.resolution
    return net.eval()


def volume_slices(path: str, args: argparse.Namespace) -> torch.Tensor:
    """The preprocessed axial slices of one volume, ``[D, 1, R, R]``."""
    item = volume_preprocessing(args.modality, args.resolution)({"image": path})
    return item["image"].as_tensor().permute(3, 0, 1, 2).contiguous()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def speed(net: SemanticSegmenter, args: argparse.Namespace) -> dict:
    x = volume_slices(args.volume, args)
    inv = net.inverter
    rows = {"volume": args.volume, "slices": int(x.shape[0]), "steps": args.steps}
    with torch.no_grad():
        rows["quick_s"], _ = timed(lambda: inv.invert(x, steps=0))
    inv.chunk_size = x.shape[0]
    rows["optimize_batched_s"], batched = timed(lambda: inv.invert(x, steps=args.steps))
    # one slice at a time: time a subset and scale, as the per-slice cost is the same for every slice
    n = min(args.single_slices, x.shape[0])
    inv.chunk_size = 1
    t_single, single = timed(lambda: inv.invert(x[:n], steps=args.steps))
    rows["optimize_single_s"] = t_single * x.shape[0] / n
    rows["single_slices_timed"] = n
    rows["speedup"] = rows["optimize_single_s"] / rows["optimize_batched_s"]
    pb = torch.sigmoid(batched.label_logits[:n])
    ps = torch.sigmoid(single.label_logits)
    rows["max_prob_diff"] = float((pb - ps).abs().max())
    rows["mask_agreement_dice"] = _agreement(pb, ps)
    # the float32 round-off of a batched convolution differs from a single one, and 100 Adam steps amplify it; a
    # 1e-6 perturbation of the input, still one slice at a time, shows the spread without any change of batching
    nudged = inv.invert(x[:n] + 1e-6 * torch.randn_like(x[:n]), steps=args.steps)
    pn = torch.sigmoid(nudged.label_logits)
    rows["perturbed_input_max_prob_diff"] = float((ps - pn).abs().max())
    rows["perturbed_input_mask_agreement_dice"] = _agreement(ps, pn)
    return rows


def _agreement(p: torch.Tensor, q: torch.Tensor) -> float:
    a, b = (p > 0.5).float(), (q > 0.5).float()
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else 2 * float((a * b).sum()) / total


def self_consistency(net: SemanticSegmenter, args: argparse.Namespace) -> list[dict]:
    """Invert slices the generator drew itself (on its manifold by construction) and compare the recovered label with
    the one the generator drew with them: the inversion's own ceiling, free of any domain gap."""
    g = net.generator
    z = torch.randn(args.self_consistency, g.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images, labels = g(z, noise_mode="const")
    truth = labels > 0
    rows = []
    for steps in args.dice_steps:
        result = net.inverter.invert(images, steps=steps)
        pred = result.label_logits > 0
        inter, total = float((pred & truth).sum()), float(pred.sum() + truth.sum())
        mse = float((result.image - images).square().mean())
        rows.append({"steps": steps, "pooled_dice": 2 * inter / total if total else 1.0, "image_mse": mse})
        print(f"self-consistency, steps {steps:4d}: pooled Dice {rows[-1]['pooled_dice']:.4f}, image MSE {mse:.4f}")
    return rows


def dice_curve(net: SemanticSegmenter, args: argparse.Namespace) -> list[dict]:
    cases = labeled_volumes(args.dice_dir)[: args.dice_cases or None]
    pre = volume_preprocessing(args.modality, args.resolution, label_key="label", label_values=args.label_values)
    # evaluate.json's own postprocessing (masks go to a scratch folder), so the Dice is the one users get
    scratch = tempfile.TemporaryDirectory()
    post = segmentation_postprocessing(pre, scratch.name)
    items = [pre(c) for c in cases]
    rows = []
    for steps in args.dice_steps:
        net.inverter.steps = steps
        net.inverter.chunk_size = 64
        inferer = SliceInferer(roi_size=(args.resolution,) * 2, spatial_dim=2, sw_batch_size=64)
        for case, item in zip(cases, items):
            start = time.perf_counter()
            batch = list_data_collate([item])
            with torch.no_grad():
                batch["pred"] = inferer(batch["image"], net)
            d = post(decollate_batch(batch)[0])
            dice = float(compute_dice(d["pred"][None].float(), d["label"][None].float(), ignore_empty=False)[0, 0])
            rows.append({"steps": steps, "case": Path(case["image"]).name, "dice": dice,
                         "seconds": time.perf_counter() - start})  # fmt: skip
            print(f"steps {steps:4d}  {rows[-1]['case']:<18} dice {dice:.4f}  {rows[-1]['seconds']:.1f} s", flush=True)
    scratch.cleanup()
    return rows


def plot(series: dict[str, list[dict]], path: str, title: str) -> None:
    """Mean (std) Dice against steps, one line per labeled series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for label, rows in series.items():
        steps = sorted({int(r["steps"]) for r in rows})
        dice = [[float(r["dice"]) for r in rows if int(r["steps"]) == s] for s in steps]
        ax.errorbar(steps, [np.mean(d) for d in dice], yerr=[np.std(d) for d in dice], marker="o", capsize=3,
                    label=f"{label} ({len(dice[0])} cases)")  # fmt: skip
    ax.set_xlabel("test-time optimization steps (0 = encoder only)")
    ax.set_ylabel("3-D Dice per case (mean, std)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="segmenter weights (train_encoder.json output); none: random")
    parser.add_argument("--volume", default="../shared/data/chaos_t2spir/image_1.nii.gz")
    parser.add_argument("--modality", default="mri")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--single_slices", type=int, default=6, help="slices timed one at a time (then scaled)")
    parser.add_argument("--perceptual", default="ssim")
    parser.add_argument("--dice_dir", default="")
    parser.add_argument("--self_consistency", type=int, default=0, help="generated slices to invert (0: skip)")
    parser.add_argument("--dice_cases", type=int, default=0)
    parser.add_argument("--dice_steps", type=int, nargs="+", default=[0, 25, 50, 100, 200])
    parser.add_argument("--label_values", type=int, nargs="+", default=[1])
    parser.add_argument("--csv", default="")
    parser.add_argument("--plot", default="")
    parser.add_argument("--title", default="")
    parser.add_argument("--plot_csv", nargs="*", default=[], help='saved runs to plot together: "label=file.csv"')
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_segmenter(args)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)  # fmt: skip
    if args.volume and args.steps >= 0:
        result = speed(net, args)
        print(json.dumps(result, indent=2), flush=True)
    if args.self_consistency:
        print(json.dumps(self_consistency(net, args), indent=2), flush=True)
    if args.dice_dir:
        rows = dice_curve(net, args)
        if args.csv:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            with open(args.csv, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        for s in sorted({r["steps"] for r in rows}):
            d = [r["dice"] for r in rows if r["steps"] == s]
            print(f"steps {s:4d}: mean Dice {np.mean(d):.4f} (std {np.std(d):.4f}, {len(d)} cases)")
        if args.plot:
            plot({Path(args.dice_dir).name: rows}, args.plot, args.title or f"{args.dice_dir}")
    elif args.plot_csv and args.plot:
        # re-plot saved runs together: --plot_csv "label=path.csv" ...
        series = {item.split("=", 1)[0]: read_csv(item.split("=", 1)[1]) for item in args.plot_csv}
        plot(series, args.plot, args.title)


if __name__ == "__main__":
    main()
