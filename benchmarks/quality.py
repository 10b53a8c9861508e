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
"""Segmentation quality: SemanticGAN against a supervised 2-D U-Net, in domain and out of domain.

For each number of labeled cases K, through the bundle's own commands (what users run):

1. ``train.json``: the GAN, on K labeled training cases and every other training case unlabeled;
2. ``train_encoder.json``: the encoder (together 1 and 2 are SemanticGAN's training wall time);
3. ``train_unet.json``: MONAI's 2-D ``UNet`` on exactly the same K labeled cases (same slice sampler, resolution and
   preprocessing), Dice + CE, flips and affine augmentation, for at least SemanticGAN's wall time;
4. ``train_unet_dg.json`` over it: the same U-Net, cases and budget with GIN + IPA intensity augmentation
   (:class:`~monai_semgan.data.RandGINd`), the single-source domain-generalization baseline;
5. ``evaluate.json``: 3-D Dice and HD95 per patient on the input grid, on the in-domain test cases and on each
   out-of-domain set: SemanticGAN in quick mode (encoder only) and in optimize mode (test-time optimization), the
   U-Nets through ``evaluate.json`` + ``unet.json``, and the position prior of the K labeled cases (their mean organ
   mask in every slice, :mod:`monai_semgan.evaluation.position_prior`), scored the same way.

Every step writes its outputs and a ``done.json`` marker under ``--out``; a rerun skips finished steps and resumes an
interrupted training from its last checkpoint. The models stay in ``--out`` (``models/model.pt``), so they can be
evaluated on other data with ``evaluate.json``. Results: ``cases.csv`` (one row per case), ``summary.csv`` (mean, std
per tag, K, method and test set; a rerun replaces the rows it measured again and keeps all others: the history) and
``quality_<tag>.png`` in ``--report_dir``.

    D=../shared/data
    python -m benchmarks.quality --train_dir $D/btcv_ct --modality ct --label_values 6 \
        --test_name btcv_ct --test_fraction 0.3334 --ood chaos_t2 mri 1 $D/chaos_t2spir \
        --ood totalseg_mr mri 5 $D/totalseg/example_mr_sm.nii.gz=$D/totalseg/example_seg_mr.nii.gz \
        --num_labeled 1 2 8 --gan_iterations 3000 --out runs/quality --report_dir docs/figures/quality --tag btcv

Without ``--test_dir`` the cases of ``--train_dir`` are split into training and test cases by ``--seed``. Options after
``--gan`` (``KEY=VALUE``) override ``train.json`` settings, e.g. ``--gan joint_r1_gamma=10``; give each such
configuration its own ``--tag``. ``--gan_from TAG`` reuses another tag's GAN (for encoder changes), ``--gan_continue
TAG`` trains on from another tag's finished GAN (same settings and cases) to ``--gan_iterations`` (longer training
without starting again; its wall time counts), ``--models_from TAG`` all its models (for changes of the inference,
``--eval KEY=VALUE``), ``--unet_from TAG`` its U-Net when that one trained with the same settings and cases for at least
this tag's SemanticGAN wall time (else a new U-Net trains), so a SemanticGAN variant is not charged a second identical
baseline. ``--methods`` picks the methods to evaluate (test-time optimization is the slow one, ``--optimize_sets``
limits it to some test sets); without ``unet`` no U-Net trains (a SemanticGAN-only screen), without ``unet_dg`` no
domain-generalization U-Net. ``--set`` overrides go to every training command (e.g. ``resolution=128``); evaluation
reads the architecture from the model files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_semgan.data import discover_cases
from monai_semgan.data.discovery import write_json_atomic
from monai_semgan.evaluation import (
    METHODS,
    dice_markdown,
    fit_position_prior,
    merge_history,
    plot_dice_bars,
    segment_with_prior,
    select_prior_threshold,
    summarize,
    write_csv,
)
from monai_semgan.segmentation import case_scores, write_dice_csv

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "liver_ct"
CONFIGS = BUNDLE / "configs"

# --quick: about 12 minutes on a 2-core CPU; the full protocol: about 80 minutes for K = 1 and 2
PROTOCOLS = {
    "quick": {"gan_iterations": 150, "encoder_iterations": 100, "optimize_steps": 20},
    "full": {"gan_iterations": 1800, "encoder_iterations": 400, "optimize_steps": 100},
}


def parse_pairs(spec: str) -> list[dict[str, str]]:
    """``IMAGE=LABEL[,IMAGE=LABEL...]`` -> datalist items; anything else is a folder or datalist for
    :func:`discover_cases`."""
    items = []
    for pair in spec.split(","):
        image, _, label = pair.partition("=")
        if not label:
            raise ValueError(f"{spec}: expected IMAGE=LABEL pairs separated by commas, or a folder / datalist .json.")
        for path in (image, label):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: file not found (in --ood {spec}).")
        items.append({"image": str(Path(image).resolve()), "label": str(Path(label).resolve())})
    return items


def test_cases(spec: str) -> list[dict[str, str]]:
    """Labeled cases of a test set given as a folder, a datalist, or ``IMAGE=LABEL`` pairs."""
    if "=" in spec:
        return parse_pairs(spec)
    cases = [c for c in discover_cases(spec) if c.get("label")]
    if not cases:
        raise ValueError(f"{spec}: no labeled case in this test set.")
    return [{"image": c["image"], "label": c["label"]} for c in cases]


def write_datalist(items: Sequence[dict[str, str]], path: Path) -> Path:
    """Write ``items`` as a datalist at ``path``; file paths become absolute, because a datalist's relative paths are
    read relative to the datalist's own folder, not to the working directory they were given in."""
    items = [{k: str(Path(v).resolve()) if k in ("image", "label") else v for k, v in i.items()} for i in items]
    write_json_atomic({"training": items}, path)
    return path


def prepare_data(args: argparse.Namespace, out: Path) -> tuple[dict[int, Path], dict[str, dict]]:
    """Write the training datalists (one per K: K cases keep their labels) and the test sets.

    Returns:
        ``{K: datalist}`` and ``{test set: {"datalist", "modality", "label_values", "domain"}}``.
    """
    cases = discover_cases(args.train_dir)
    labeled = [c for c in cases if c.get("label")]
    rng = np.random.default_rng(args.seed)
    if args.test_dir:
        train, test = cases, [{"image": c["image"], "label": c["label"]} for c in test_cases(args.test_dir)]
    else:
        if len(labeled) < 2:
            raise ValueError(f"{args.train_dir}: at least 2 labeled cases are needed to split train and test.")
        order = [labeled[i] for i in rng.permutation(len(labeled))]
        n_test = max(1, round(args.test_fraction * len(labeled)))
        test_ids = {c["case_id"] for c in order[:n_test]}
        train = [c for c in cases if c["case_id"] not in test_ids]
        test = [{"image": c["image"], "label": c["label"]} for c in order[:n_test]]
    train_labeled = [c for c in train if c.get("label")]
    # the same order for every K, so the K = 1 case is one of the K = 2 cases
    pick = [train_labeled[i]["case_id"] for i in np.random.default_rng(args.seed + 1).permutation(len(train_labeled))]
    data_dir = out / "data"
    datalists = {}
    for k in args.num_labeled:
        if k > len(pick):
            raise ValueError(f"--num_labeled {k}: only {len(pick)} labeled training cases.")
        keep = set(pick[:k])
        items = [
            {"image": c["image"], "case_id": c["case_id"], **({"label": c["label"]} if c["case_id"] in keep else {})}
            for c in train
        ]
        datalists[k] = write_datalist(items, data_dir / f"train_k{k}.json")
    sets = {
        args.test_name: {
            "datalist": write_datalist(test, data_dir / f"test_{args.test_name}.json"),
            "modality": args.modality,
            "label_values": args.label_values,
            "domain": "in",
            "name": args.test_name,
        }
    }
    for name, modality, values, spec in args.ood or []:
        sets[name] = {
            "datalist": write_datalist(test_cases(spec), data_dir / f"test_{name}.json"),
            "modality": modality,
            "label_values": [int(v) for v in values.split(",")],
            "domain": "out",
            "name": name,
        }
    tests = {n: str(s["datalist"]) for n, s in sets.items()}
    split = {"train": [c["case_id"] for c in train], "labeled_order": pick, "test": tests}
    write_json_atomic(split, data_dir / "split.json")
    return datalists, sets


def finished_wall(name: str, marker: Path) -> float | None:
    """The wall time recorded in a step's ``done.json`` (announced as done before), or ``None`` when it must run."""
    if not marker.exists():
        return None
    wall = float(json.loads(marker.read_text(encoding="utf-8"))["wall_s"])
    print(f"  {name:<40} done before ({wall / 60:.1f} min)", flush=True)
    return wall


def run_step(name: str, cmd: list[str], folder: Path, verbose: bool = False) -> float:
    """Run one step unless its ``done.json`` exists; returns its wall time in seconds (recorded in the marker).

    The wall time of a step that was interrupted (killed with the session) and resumed counts every attempt: each
    attempt records its start in ``attempt.json``, and an unfinished one lasted until its log was last written.

    Raises:
        RuntimeError: when the command fails (the message names its log).
    """
    marker = folder / "done.json"
    done = finished_wall(name, marker)
    if done is not None:
        return done
    folder.mkdir(parents=True, exist_ok=True)
    log, attempt = folder / "log.txt", folder / "attempt.json"
    before, attempts = 0.0, 1
    if attempt.exists() and log.exists():
        last = json.loads(attempt.read_text(encoding="utf-8"))
        before = float(last["before_s"]) + max(0.0, log.stat().st_mtime - float(last["started"]))
        attempts = int(last["attempts"]) + 1
        print(f"  {name:<40} resuming (attempt {attempts}, {before / 60:.1f} min before)", flush=True)
    write_json_atomic({"started": time.time(), "before_s": before, "attempts": attempts}, attempt)
    print(f"  {name:<40} running (log: {log})", flush=True)
    start = time.perf_counter() - before
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace"):
            f.write(line)
            if verbose:
                sys.stdout.write(line)
        code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{name} failed (exit {code}); see {log}")
    write_json_atomic({"wall_s": wall, "command": cmd, "attempts": attempts}, marker)
    print(f"  {name:<40} finished in {wall / 60:.1f} min", flush=True)
    return wall


def bundle(workflow: str, configs: Sequence[str], *options: str) -> list[str]:
    files = [str(CONFIGS / c) for c in configs]
    config_arg = files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"
    return [sys.executable, "-m", "monai.bundle", "run", workflow, "--config_file", config_arg,
            "--bundle_root", str(BUNDLE), *options]  # fmt: skip


def parse_set(pairs: Sequence[str]) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` -> ``(KEY, value)`` with JSON values parsed (``resolution=128`` -> 128)."""
    options = overrides(pairs)
    parsed = []
    for key, value in zip(options[::2], options[1::2]):
        try:
            parsed.append((key[2:], json.loads(value)))
        except json.JSONDecodeError:
            parsed.append((key[2:], value))
    return parsed


def overrides(pairs: Sequence[str]) -> list[str]:
    """``KEY=VALUE`` -> ``--KEY VALUE``."""
    options = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair}: expected KEY=VALUE.")
        options += [f"--{key}", value]
    return options


def run_k(args: argparse.Namespace, k: int, datalist: Path, sets: dict[str, dict], run_dir: Path) -> list[dict]:
    """Train both methods with K labeled cases and evaluate them on every test set; returns per-case rows."""
    protocol = dict(PROTOCOLS["quick" if args.quick else "full"])
    protocol.update({key: getattr(args, key) for key in protocol if getattr(args, key) is not None})
    labels = json.dumps(list(args.label_values))
    common = ["--modality", args.modality, "--label_values", labels, "--seed", str(args.seed), *overrides(args.set)]
    gan_dir, enc_dir, unet_dir = run_dir / "semgan" / "gan", run_dir / "semgan" / "encoder", run_dir / "unet"
    dg_dir = run_dir / "unet_dg"
    # another tag's models (same data, seed and protocol): only what comes after them differs
    for source, reused in ((args.gan_from, ("gan",)), (args.models_from, ("gan", "encoder", "unet"))):
        if not source:
            continue
        other = run_dir.parents[2] / source / run_dir.parent.name / run_dir.name
        dirs = {"gan": other / "semgan" / "gan", "encoder": other / "semgan" / "encoder", "unet": other / "unet"}
        for name in reused:
            if not (dirs[name] / "done.json").exists():
                raise FileNotFoundError(f"{dirs[name]}: the {name} of tag {source} for K = {k} is not done.")
        gan_dir = dirs["gan"]
        if "encoder" in reused:
            enc_dir, unet_dir, dg_dir = dirs["encoder"], dirs["unet"], other / "unet_dg"
    print(f"K = {k} ({run_dir})", flush=True)
    gan_command = bundle("training", ["train.json"], "--output_dir", str(gan_dir), "--dataset_dir", str(datalist),
                         "--num_labeled", str(k), "--iterations", str(protocol["gan_iterations"]), *common,
                         *overrides(args.gan))  # fmt: skip
    if args.gan_continue:
        source = run_dir.parents[2] / args.gan_continue / run_dir.parent.name / run_dir.name / "semgan" / "gan"
        continue_gan(source, gan_dir, gan_command)
    gan_wall = run_step(f"[K={k}] SemanticGAN: GAN", gan_command, gan_dir, args.verbose)
    enc_wall = run_step(
        f"[K={k}] SemanticGAN: encoder", bundle("training", ["train.json", "train_encoder.json"],
        "--gan_dir", str(gan_dir), "--output_dir", str(enc_dir), "--iterations", str(protocol["encoder_iterations"]),
        *common, *overrides(args.encoder)), enc_dir, args.verbose,
    )  # fmt: skip
    semgan_wall = gan_wall + enc_wall
    budget = semgan_wall * args.unet_time_factor

    def unet_command(folder: Path, overlays: Sequence[str] = ()) -> list[str]:
        return bundle("training", ["train.json", "train_unet.json", *overlays], "--output_dir", str(folder),
                      "--dataset_dir", str(datalist), "--num_labeled", str(k), "--iterations", "1000000",
                      "--time_limit_s", f"{budget:.0f}", *common, *overrides(args.unet))  # fmt: skip

    unet_wall = dg_wall = 0.0
    if "unet" not in args.methods:  # a SemanticGAN-only screen: no baseline to train
        print(f"  [K={k}] U-Net not trained: --methods leaves it out", flush=True)
    else:
        if args.unet_from and not args.models_from:
            other = run_dir.parents[2] / args.unet_from / run_dir.parent.name / run_dir.name / "unet"
            why = reusable_unet(other, unet_command(other), budget)
            if why:
                print(f"  [K={k}] not reusing the U-Net of tag {args.unet_from}: {why}; training a new one", flush=True)
            else:
                unet_dir = other
        # the U-Net trains at least as long as SemanticGAN did; the iteration cap is never the limit on CPU
        unet_wall = run_step(f"[K={k}] U-Net", unet_command(unet_dir), unet_dir, args.verbose)
    if "unet_dg" in args.methods:
        # the same U-Net, data and budget, with GIN + IPA intensity augmentation (train_unet_dg.json)
        dg_wall = run_step(
            f"[K={k}] U-Net + GIN/IPA", unet_command(dg_dir, ["train_unet_dg.json"]), dg_dir, args.verbose
        )
    models = {"semgan": enc_dir / "models" / "model.pt", "unet": unet_dir / "models" / "model.pt",
              "unet_dg": dg_dir / "models" / "model.pt"}  # fmt: skip
    train_walls = {"unet": unet_wall, "unet_dg": dg_wall, "position_prior": 0.0}
    rows = []
    for set_name, spec in sets.items():
        for method in args.methods:
            if method == "semgan_optimize" and args.optimize_sets and set_name not in args.optimize_sets:
                continue
            eval_dir = run_dir / "eval" / method / set_name
            if method == "position_prior":
                eval_wall = run_prior(k, datalist, spec, models["semgan"], eval_dir, args)
            else:
                eval_wall = run_evaluation(k, method, spec, models, protocol, eval_dir, args)
            with open(eval_dir / "dice.csv", encoding="utf-8") as f:
                cases = [r for r in csv.DictReader(f) if r["case"] not in ("mean", "std")]
            train_wall = train_walls.get(method, semgan_wall)
            for r in cases:
                rows.append({
                    "tag": args.tag, "K": k, "method": method, "test_set": set_name, "domain": spec["domain"],
                    "case": r["case"], "dice": float(r["dice"]),
                    "hd95_mm": float(r["hd95_mm"]) if r["hd95_mm"] else float("nan"),
                    "train_min": train_wall / 60, "eval_s_per_case": eval_wall / max(1, len(cases)),
                })  # fmt: skip
    return rows


def training_differs(old: Sequence[str], new: Sequence[str], length_option: str) -> str:
    """Why the finished training command ``old`` is not ``new`` apart from its folder, its datalist's path and its
    length (``length_option``); ``""`` when only those differ and both datalists hold the same cases."""
    options = {"--output_dir", "--dataset_dir", length_option}

    def settings(cmd: Sequence[str]) -> list[str]:
        return [a for i, a in enumerate(cmd) if a not in options and (i == 0 or cmd[i - 1] not in options)]

    if settings(old) != settings(new):
        return "its settings differ"
    datalists = [ROOT / cmd[cmd.index("--dataset_dir") + 1] for cmd in (old, new)]  # the commands run in ROOT
    cases = [json.loads(d.read_text(encoding="utf-8")) if d.exists() else None for d in datalists]
    return "its training cases differ" if cases[0] is None or cases[0] != cases[1] else ""


def continue_gan(source: Path, gan_dir: Path, command: Sequence[str]) -> None:
    """Start ``gan_dir`` from the finished GAN in ``source`` (another tag's): its checkpoints, samples and log are
    copied, and its wall time is recorded as an earlier attempt, so that ``command`` (the same settings, more
    iterations) resumes from the last checkpoint and the step's wall time counts both. Nothing happens when
    ``gan_dir`` already holds checkpoints (an interrupted continuation resumes like any step).

    Raises:
        FileNotFoundError: when ``source`` is not a finished GAN.
        ValueError: when its settings differ from ``command``'s, or it trained at least as many iterations.
    """
    if (gan_dir / "checkpoints").exists() or (gan_dir / "done.json").exists():
        return
    marker = source / "done.json"
    if not marker.exists():
        raise FileNotFoundError(f"{source}: no finished GAN to continue (no done.json).")
    done = json.loads(marker.read_text(encoding="utf-8"))
    old = list(done["command"])
    why = training_differs(old, command, "--iterations")
    if why:
        raise ValueError(f"{source}: {why} from this run's; it cannot be continued.")
    trained, wanted = int(old[old.index("--iterations") + 1]), int(command[command.index("--iterations") + 1])
    if trained >= wanted:
        raise ValueError(f"{source}: it trained {trained} iterations, not fewer than the {wanted} asked for.")
    tmp = gan_dir.with_name(gan_dir.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("done.json", "attempt.json", "models"))
    # the copied log keeps the source's time stamp, so run_step adds nothing for the gap until this attempt
    write_json_atomic({"started": time.time(), "before_s": float(done["wall_s"]), "attempts": 1}, tmp / "attempt.json")
    tmp.rename(gan_dir)
    print(f"  continuing the GAN of {source} ({trained} iterations, {done['wall_s'] / 60:.1f} min)", flush=True)


def run_evaluation(
    k: int, method: str, spec: dict, models: dict[str, Path], protocol: dict, eval_dir: Path, args: argparse.Namespace
) -> float:
    """Evaluate one trained method on one test set through ``evaluate.json``; returns the wall time in seconds."""
    unet = method.startswith("unet")
    # evaluate.json is an overlay of inference.json; the architecture comes from the model file
    configs = ["inference.json", "evaluate.json"] + (["unet.json"] if unet else [])
    options = ["--model_path", str(models[method if unet else "semgan"]),
               "--dataset_dir", str(spec["datalist"]), "--output_dir", str(eval_dir),
               "--modality", spec["modality"], "--label_values", str(list(spec["label_values"]))]  # fmt: skip
    if not unet:
        options += ["--mode", method.split("_")[1], "--optimize_steps", str(protocol["optimize_steps"])]
        options += overrides(args.eval)
    name = f"[K={k}] evaluate {method} on {spec['name']}"
    return run_step(name, bundle("evaluating", configs, *options), eval_dir, args.verbose)


def evaluation_config(model: Path, modality: str, label_values: Sequence[int], settings: dict) -> ConfigParser:
    """``inference.json`` + ``evaluate.json`` as an evaluation of ``model`` reads them (the network is only built when
    asked for; the resolution, and so the preprocessing, may be read off it)."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "evaluate.json")])
    parser.update({"bundle_root": str(BUNDLE), "model_path": str(model), "output_dir": "", "modality": modality,
                   "label_values": list(label_values), **settings})  # fmt: skip
    return parser


def run_prior(k: int, datalist: Path, spec: dict, model: Path, eval_dir: Path, args: argparse.Namespace) -> float:
    """Score the position prior of the K labeled training cases on one test set (``dice.csv`` like every method,
    a ``done.json`` marker); returns the wall time in seconds. ``model`` only gives the resolution."""
    marker, name = eval_dir / "done.json", f"[K={k}] evaluate position_prior on {spec['name']}"
    done = finished_wall(name, marker)
    if done is not None:
        return done
    start = time.perf_counter()
    labeled = [c for c in json.loads(datalist.read_text(encoding="utf-8"))["training"] if c.get("label")]
    settings = dict(parse_set(args.set))
    train_config = evaluation_config(model, args.modality, args.label_values, settings)
    prior = fit_position_prior(labeled, list(args.label_values), int(train_config.get_parsed_content("resolution")))
    threshold, _ = select_prior_threshold(prior, train_config.get_parsed_content("preprocessing"), labeled)
    test_config = evaluation_config(model, spec["modality"], spec["label_values"], settings)
    test_preprocessing = test_config.get_parsed_content("preprocessing")
    rows = []
    for item in json.loads(Path(spec["datalist"]).read_text(encoding="utf-8"))["training"]:
        dice, hd = case_scores(*segment_with_prior(prior, test_preprocessing, item, threshold, eval_dir))
        rows.append({"case": Path(item["image"]).name.split(".")[0], "dice": dice, "hd95_mm": hd})
    write_dice_csv(rows, eval_dir / "dice.csv")
    wall = time.perf_counter() - start
    write_json_atomic({"wall_s": wall, "threshold": threshold, "fitted_on": [c["image"] for c in labeled]}, marker)
    print(f"  {name:<40} finished in {wall / 60:.1f} min (threshold {threshold})", flush=True)
    return wall


def reusable_unet(unet_dir: Path, command: Sequence[str], budget: float) -> str:
    """Why the finished U-Net run in ``unet_dir`` cannot stand in for ``command`` (a U-Net training for ``budget``
    seconds); ``""`` when it can: the same settings and training cases, and at least the budget."""
    marker = unet_dir / "done.json"
    if not marker.exists():
        return "it is not done"
    old = list(json.loads(marker.read_text(encoding="utf-8"))["command"])
    why = training_differs(old, command, "--time_limit_s")
    if why:
        return why
    trained = float(old[old.index("--time_limit_s") + 1])
    if trained < round(budget):
        return f"it trained for {trained / 60:.1f} min, less than this tag's {budget / 60:.1f} min"
    return ""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_dir", required=True, help="labeled (and unlabeled) training cases")
    parser.add_argument("--test_dir", default="", help="in-domain test cases (default: split --train_dir by --seed)")
    parser.add_argument("--test_name", default="in_domain", help="name of the in-domain test set")
    parser.add_argument("--test_fraction", type=float, default=0.4, help="share of labeled cases held out for test")
    parser.add_argument("--modality", default="mri", choices=("mri", "ct"))
    parser.add_argument("--label_values", type=int, nargs="+", default=[1], help="label values of the organ")
    parser.add_argument("--ood", nargs=4, action="append", metavar=("NAME", "MODALITY", "LABEL_VALUES", "PATH"),
                        help="out-of-domain test set; PATH: folder, datalist or IMAGE=LABEL[,IMAGE=LABEL]")  # fmt: skip
    parser.add_argument("--num_labeled", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="short training and optimization (about 12 min on CPU)")
    for key in PROTOCOLS["full"]:
        parser.add_argument(f"--{key}", type=int, default=None, help="override the protocol's value")
    parser.add_argument("--tag", default="default", help="name of this configuration in the tables")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every command")
    parser.add_argument("--gan", nargs="*", default=[], metavar="KEY=VALUE", help="train.json overrides")
    parser.add_argument("--gan_from", default="", metavar="TAG", help="reuse another tag's GAN (wall time counts)")
    parser.add_argument(
        "--gan_continue",
        default="",
        metavar="TAG",
        help="train on from another tag's finished GAN to --gan_iterations (its wall time counts)",
    )
    parser.add_argument("--models_from", default="", metavar="TAG", help="reuse another tag's trained models")
    parser.add_argument("--eval", nargs="*", default=[], metavar="KEY=VALUE", help="evaluate.json overrides (SemGAN)")
    parser.add_argument("--encoder", nargs="*", default=[], metavar="KEY=VALUE", help="train_encoder.json overrides")
    parser.add_argument("--unet", nargs="*", default=[], metavar="KEY=VALUE", help="train_unet.json overrides")
    parser.add_argument("--unet_from", default="", metavar="TAG",
                        help="reuse another tag's U-Net where it trained at least this tag's budget")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to evaluate")
    parser.add_argument("--optimize_sets", nargs="*", default=[], metavar="TEST_SET",
                        help="test sets for test-time optimization (default: all; it is the slow method)")  # fmt: skip
    parser.add_argument("--unet_time_factor", type=float, default=1.0, help="U-Net budget / SemanticGAN wall time")
    parser.add_argument("--out", default="runs/quality", help="models, logs and per-run results")
    parser.add_argument("--report_dir", default="", help="where summary.csv, cases.csv, quality.png go (default --out)")
    parser.add_argument("--verbose", action="store_true", help="stream the bundle commands' output")
    args = parser.parse_args(argv)
    if args.gan_continue and (args.gan_from or args.models_from):
        parser.error("--gan_continue trains a GAN on; --gan_from and --models_from reuse one as is: give one of them")

    out = Path(args.out) / args.tag / ("quick" if args.quick else "full")
    report = Path(args.report_dir) if args.report_dir else Path(args.out)
    start = time.perf_counter()
    machine = f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"quality benchmark '{args.tag}' ({'quick' if args.quick else 'full'}) -> {out}; {machine}", flush=True)
    datalists, sets = prepare_data(args, out)
    rows = []
    for k in args.num_labeled:
        rows += run_k(args, k, datalists[k], sets, out / f"k{k}")
    suffix = "_quick" if args.quick else ""
    write_csv(rows, out / "cases.csv")
    summary = summarize(rows)
    write_csv(summary, out / "summary.csv")
    history = merge_history(summary, report / f"summary{suffix}.csv")
    write_csv(history, report / f"summary{suffix}.csv")
    write_csv(merge_history(rows, report / f"cases{suffix}.csv"), report / f"cases{suffix}.csv")
    protocol = "quick" if args.quick else "full"
    title = f"Liver 3-D Dice, tag '{args.tag}', {protocol} protocol; in domain: {args.test_name}"
    plot_dice_bars(history, args.tag, report / f"quality_{args.tag}{suffix}.png", title)
    print(dice_markdown(summary))
    print(f"total {(time.perf_counter() - start) / 60:.1f} min; report in {report}", flush=True)


if __name__ == "__main__":
    main()
