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
"""Why SemanticGAN's Dice is what it is, per test case of a finished ``benchmarks/quality.py`` run:

- inversion quality: the reconstruction error of the encoder's embedding (MSE on the body slices, images in [-1, 1])
  against the case's 3-D Dice;
- label alignment: predicted liver volume / reference liver volume (from the evaluation's masks; > 1 over-segments),
  and the share of predicted voxels in axial slices that hold no liver in the reference; with ``--profile_plot``,
  the liver's area in every axial slice, reference against each method;
- generator quality: the liver fraction of generated samples against that of the labeled training slices, and
  how much of the samples' fine detail (mean absolute Laplacian) the synthesis network draws itself rather than
  takes from its per-pixel noise inputs (the same samples with ``noise_mode="none"``), against real slices;
- a position prior that ignores the image (``--position_prior``): the labeled training volumes' mean organ mask on
  the generator's grid, the same in every axial slice, thresholded where it fits those volumes best, then mapped back
  and scored like every method (``eval/position_prior/<test set>/``). A method that beats it reads the image.

    python -m benchmarks.quality_diagnostics --run runs/quality/default/full/k1 \
        --csv docs/figures/quality/diagnostics_default_k1.csv --plot docs/figures/quality/diagnostics_default_k1.png

The run folder is one K of a quality run (``<out>/<tag>/<protocol>/k<K>``); the architecture is read from the
bundle's ``evaluate.json`` with ``--set KEY=VALUE`` overrides, as in the run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.quality import ROOT, evaluation_config, parse_set
from monai_semgan.atomic_write import atomic_path
from monai_semgan.data import make_slice_dataset, parse_label_values, read_split
from monai_semgan.evaluation import (
    axial_profiles,
    fit_position_prior,
    in_plane_voxel_cm2,
    load_masks,
    outside_share,
    plot_area_profiles,
    read_case_dice,
    segment_with_prior,
    select_prior_threshold,
    volume_ratio_and_offset,
    write_csv,
)
from monai_semgan.segmentation import case_scores, write_dice_csv


def eval_settings(run: Path, set_name: str) -> tuple[str, list[int]]:
    """The modality and label values the run's evaluation on ``set_name`` used."""
    marker = run / "eval" / "semgan_quick" / set_name / "done.json"
    cmd = json.loads(marker.read_text(encoding="utf-8"))["command"]
    return cmd[cmd.index("--modality") + 1], json.loads(cmd[cmd.index("--label_values") + 1])


def gan_settings(gan_dir: Path) -> tuple[str, dict[int, int]]:
    """The modality and the label values (source value -> class) the GAN in ``gan_dir`` trained with: its command's
    ``--label_values``, or the ``--label_mapping`` of runs made before the bundle took ``label_values``, or the
    bundle's default (1)."""
    cmd = json.loads((gan_dir / "done.json").read_text(encoding="utf-8"))["command"]
    spec = next((cmd[cmd.index(o) + 1] for o in ("--label_values", "--label_mapping") if o in cmd), 1)
    return cmd[cmd.index("--modality") + 1], parse_label_values(spec)


def load_segmenter_and_preprocessing(model: Path, modality: str, label_values: Sequence[int], overrides: dict):
    parser = evaluation_config(model, modality, label_values, overrides)
    return parser.get_parsed_content("network"), parser.get_parsed_content("preprocessing")


@torch.no_grad()
def reconstruction_error(segmenter, image: torch.Tensor) -> float:
    """Encoder-only reconstruction MSE over the slices that hold body (``image``: ``[1, R, R, D]`` in [-1, 1])."""
    slices = torch.as_tensor(image).permute(3, 0, 1, 2).float()  # [D, 1, R, R]
    body = (slices > -0.9).float().mean(dim=(1, 2, 3)) >= 0.05
    slices = slices[body] if body.any() else slices
    ws = segmenter.encoder(slices)
    recon, _ = segmenter.generator.synthesis(ws, noise_mode="const")
    return float((recon - slices).square().mean())


@torch.no_grad()
def generated_liver_fraction(segmenter, samples: int = 256, seed: int = 0) -> tuple[float, float]:
    """Mean fraction of generated pixels labeled liver, and the share of samples with any."""
    g = segmenter.generator
    torch.manual_seed(seed)
    _, logits = g(torch.randn(samples, g.z_dim))
    mask = logits[:, 0] > 0
    return float(mask.float().mean()), float(mask.flatten(1).any(dim=1).float().mean())


def mean_abs_laplacian(images: torch.Tensor) -> float:
    """Mean absolute 4-neighbour Laplacian of ``[N, 1, H, W]`` images: their fine detail."""
    x = images.float()
    lap = 4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]
    return float(lap.abs().mean())


@torch.no_grad()
def generated_detail(segmenter, samples: int = 64, seed: int = 0) -> tuple[float, float]:
    """Fine detail of generated images with their noise inputs and of the same latents without them: a generator
    whose texture vanishes without noise draws its structure from noise, not from what it learned."""
    g = segmenter.generator
    torch.manual_seed(seed)
    z = torch.randn(samples, g.z_dim)
    return mean_abs_laplacian(g(z)[0]), mean_abs_laplacian(g(z, noise_mode="none")[0])


def real_slices(gan_dir: Path, modality: str, resolution: int, samples: int = 64, seed: int = 0) -> torch.Tensor:
    """``samples`` of the GAN's unlabeled training slices ``[N, 1, R, R]``, drawn as it drew them."""
    labeled, unlabeled = read_split(gan_dir)
    ds = make_slice_dataset(unlabeled or labeled, modality, resolution, False, slices_per_volume=samples)
    ds.set_random_state(seed)
    return torch.stack([torch.as_tensor(ds[i]["image"]) for i in range(samples)])


@torch.no_grad()
def write_detail_grid(segmenter, reals: torch.Tensor, path: Path, columns: int = 8, seed: int = 1) -> None:
    """A PNG of three rows: generated images, the same latents without noise inputs, real training slices."""
    g = segmenter.generator
    torch.manual_seed(seed)
    z = torch.randn(columns, g.z_dim)
    rows = [g(z)[0], g(z, noise_mode="none")[0], reals[:columns]]
    grey = torch.cat([torch.cat(list(r[:, 0].float().clamp(-1, 1)), dim=1) for r in rows], dim=0)
    pixels = ((grey + 1) * 127.5).round().to(torch.uint8).numpy().repeat(2, axis=0).repeat(2, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(pixels).save(tmp)


def labeled_liver_fraction(
    gan_dir: Path, modality: str, resolution: int, mapping: dict[int, int], samples: int = 256, seed: int = 0
) -> float:
    labeled, _ = read_split(gan_dir)
    ds = make_slice_dataset(labeled, modality, resolution, True, slices_per_volume=samples, label_values=mapping)
    ds.set_random_state(seed)
    return float(np.mean([float((ds[i]["label"] > 0).float().mean()) for i in range(samples)]))


def evaluate_position_prior(run: Path, gan_dir: Path, model: Path, overrides: dict) -> float:
    """Fit the prior to the run's labeled volumes, choose its threshold on them (``PRIOR_THRESHOLDS``), and write its
    masks and ``dice.csv`` for every test set into ``run/eval/position_prior/<set>/``; returns the threshold."""
    labeled, _ = read_split(gan_dir)
    gan_modality, mapping = gan_settings(gan_dir)
    values = [int(k) for k, v in mapping.items() if v == 1]
    config = evaluation_config(model, gan_modality, values, overrides)
    prior = fit_position_prior(labeled, values, int(config.get_parsed_content("resolution")))
    threshold, _ = select_prior_threshold(prior, config.get_parsed_content("preprocessing"), labeled)
    split = json.loads((run.parent / "data" / "split.json").read_text(encoding="utf-8"))
    for set_name, datalist in split["test"].items():
        modality, label_values = eval_settings(run, set_name)
        preprocessing = evaluation_config(model, modality, label_values, overrides).get_parsed_content("preprocessing")
        out_dir = run / "eval" / "position_prior" / set_name
        rows = []
        for item in json.loads(Path(datalist).read_text(encoding="utf-8"))["training"]:
            dice, hd = case_scores(*segment_with_prior(prior, preprocessing, item, threshold, out_dir), hd95=False)
            rows.append({"case": Path(item["image"]).name.split(".")[0], "dice": dice, "hd95_mm": hd})
        write_dice_csv(rows, out_dir / "dice.csv")
        scores = [round(r["dice"], 3) for r in rows]
        print(f"position prior (threshold {threshold}) on {set_name}: {scores}", flush=True)
    return threshold


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a K folder of a quality run")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="architecture overrides of the run")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--plot", default="")
    parser.add_argument("--profile_plot", default="", help="organ area per axial slice, reference against each method")
    parser.add_argument(
        "--detail_grid", default="", help="PNG: generated samples, the same without noise inputs, real slices"
    )
    parser.add_argument(
        "--position_prior", action="store_true", help="also score the labeled volumes' mean mask in every slice"
    )
    args = parser.parse_args(argv)
    run = Path(args.run)
    overrides = dict(parse_set(args.set))
    split = json.loads((run.parent / "data" / "split.json").read_text(encoding="utf-8"))
    model = run / "semgan" / "encoder" / "models" / "model.pt"
    # the GAN the encoder was trained on: another tag's when the run reused it (--gan_from)
    enc_cmd = json.loads((run / "semgan" / "encoder" / "done.json").read_text(encoding="utf-8"))["command"]
    gan_dir = ROOT / enc_cmd[enc_cmd.index("--gan_dir") + 1]  # quality.py runs its commands in ROOT
    prior_threshold = evaluate_position_prior(run, gan_dir, model, overrides) if args.position_prior else None
    rows, profiles = [], {}
    for set_name, datalist in split["test"].items():
        modality, label_values = eval_settings(run, set_name)
        segmenter, preprocessing = load_segmenter_and_preprocessing(model, modality, label_values, overrides)
        items = json.loads(Path(datalist).read_text(encoding="utf-8"))["training"]
        dice = {}
        for method in ("semgan_quick", "semgan_optimize", "unet", "position_prior"):
            dice_csv = run / "eval" / method / set_name / "dice.csv"
            if not dice_csv.exists():
                continue  # a run with --methods that left this method out
            dice[method] = read_case_dice(dice_csv)
        for item in items:
            case = Path(item["image"]).name.split(".")[0]
            image = preprocessing({"image": item["image"], "label": item["label"]})["image"]
            row = {"test_set": set_name, "case": case, "recon_mse": round(reconstruction_error(segmenter, image), 5)}
            for method in dice:
                row[f"dice_{method}"] = dice[method].get(case, float("nan"))
                seg = run / "eval" / method / set_name / f"{case}_seg.nii.gz"
                seg_image, pred, ref_image, ref = load_masks(seg, Path(item["label"]), label_values)
                ratio, offset = volume_ratio_and_offset(seg_image, pred, ref_image, ref)
                row[f"volume_ratio_{method}"] = round(ratio, 3)
                row[f"offset_right_mm_{method}"] = offset
                predicted, reference = axial_profiles(pred, ref_image, ref)
                row[f"outside_share_{method}"] = round(outside_share(predicted, reference), 3)
                cm2 = in_plane_voxel_cm2(ref_image)
                curves = profiles.setdefault(set_name, {}).setdefault(case, {"reference": reference * cm2})
                curves[method] = predicted * cm2
            rows.append(row)
            print(row, flush=True)
    fraction, any_liver = generated_liver_fraction(segmenter)
    gan_modality, mapping = gan_settings(gan_dir)
    real = labeled_liver_fraction(gan_dir, gan_modality, segmenter.resolution, mapping)
    print(f"generated liver pixels {fraction:.3%} (samples with liver {any_liver:.0%}); labeled slices {real:.3%}")
    detail, detail_no_noise = generated_detail(segmenter)
    reals = real_slices(gan_dir, gan_modality, segmenter.resolution)
    detail_real = mean_abs_laplacian(reals)
    if args.detail_grid:
        write_detail_grid(segmenter, reals, Path(args.detail_grid))
    print(
        f"fine detail (mean |Laplacian|): generated {detail:.3f}, without noise {detail_no_noise:.3f}, "
        f"real {detail_real:.3f}"
    )
    for row in rows:  # the same for every case: one generator
        row.update(generated_liver_fraction=round(fraction, 5), generated_any_liver=round(any_liver, 3),
                   labeled_liver_fraction=round(real, 5), generated_detail=round(detail, 4),
                   generated_detail_no_noise=round(detail_no_noise, 4), real_detail=round(detail_real, 4))  # fmt: skip
        if prior_threshold is not None:
            row["position_prior_threshold"] = prior_threshold
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, Path(args.csv))
    if args.plot:
        plot(rows, Path(args.plot), run)
    if args.profile_plot:
        plot_area_profiles(
            profiles, Path(args.profile_plot), f"{run.parent.parent.name} / {run.parent.name} / {run.name}"
        )


def plot(rows: Sequence[dict], path: Path, run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    sets = list(dict.fromkeys(r["test_set"] for r in rows))
    for s, marker in zip(sets, "os^vD"):
        rs = [r for r in rows if r["test_set"] == s]
        axes[0].scatter([r["recon_mse"] for r in rs], [r["dice_semgan_quick"] for r in rs], marker=marker, label=s)
        ratio = [r["volume_ratio_semgan_quick"] for r in rs]
        axes[1].scatter(ratio, [r["dice_semgan_quick"] for r in rs], marker=marker, label=s)
    axes[0].set_xlabel("encoder reconstruction MSE (body slices)")
    axes[1].set_xlabel("predicted / reference liver volume")
    axes[1].axvline(1.0, color="grey", lw=0.8)
    for ax in axes:
        ax.set_ylabel("3-D Dice, SemanticGAN (encoder)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{run.parent.parent.name} / {run.parent.name} / {run.name}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
