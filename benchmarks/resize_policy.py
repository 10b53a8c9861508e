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
"""Which in-plane resize the volume pipeline should use: one model, evaluated through the bundle's own evaluation
(``inference.json`` + ``evaluate.json``) with the image resized by each candidate, in one process.

The candidates are the two policies the project had before issue 18: ``area`` (training's) and ``trilinear`` with
anti-aliasing (inference's). Each resize is undone by ``Invertd`` with its own mode, as in the shipped pipeline.

    python -m benchmarks.resize_policy --model runs/quality/TAG/full/k1/semgan/encoder/models/model.pt \
        --dataset_dir ../shared/data/chaos_t2spir --modality mri --label_values 1 --out runs/resize_policy
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from monai.bundle import ConfigParser
from monai.transforms import Resized

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bundles" / "liver_ct" / "configs"
POLICIES = {
    "area": {"mode": "area", "anti_aliasing": False},
    "trilinear_aa": {"mode": "trilinear", "anti_aliasing": True},
}


def evaluate(policy: str, args: argparse.Namespace) -> list[dict[str, str]]:
    """Run the bundle's evaluation with the image resized by ``policy``; returns the rows of its ``dice.csv``."""
    out = Path(args.out) / policy
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(CONFIGS / "evaluate.json")])
    parser.update(
        {
            "bundle_root": str(ROOT / "bundles" / "liver_ct"),
            "model_path": args.model,
            "dataset_dir": args.dataset_dir,
            "modality": args.modality,
            "label_values": args.label_values,
            "output_dir": str(out),
            "mode": "quick",
        }
    )
    preprocessing = parser.get_parsed_content("preprocessing")
    image_resizes = [t for t in preprocessing.transforms if isinstance(t, Resized) and "image" in t.keys]
    assert len(image_resizes) == 1, "expected one image resize in the volume pipeline"
    for name, value in POLICIES[policy].items():  # Resized passes its own per-key settings to the resizer
        setattr(image_resizes[0], name, (value,))
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")
    with open(out / "dice.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a segmenter model file (train_encoder.json output)")
    parser.add_argument("--dataset_dir", required=True, help="labeled volumes (image_N / label_N)")
    parser.add_argument("--modality", default="mri", choices=("mri", "ct"))
    parser.add_argument("--label_values", default="1", help="which label values are the organ")
    parser.add_argument("--out", default="runs/resize_policy")
    args = parser.parse_args()
    table: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        rows = evaluate(policy, args)
        table[policy] = {r["case"]: float(r["dice"]) for r in rows if r["case"] not in ("mean", "std")}
    cases = sorted(next(iter(table.values())))
    print(f"{'case':12s} " + " ".join(f"{p:>14s}" for p in POLICIES))
    for case in cases:
        print(f"{case:12s} " + " ".join(f"{table[p][case]:14.4f}" for p in POLICIES))
    means = {p: float(np.mean(list(table[p].values()))) for p in POLICIES}
    print(f"{'mean':12s} " + " ".join(f"{means[p]:14.4f}" for p in POLICIES))
    diff = np.array([table["area"][c] - table["trilinear_aa"][c] for c in cases])
    print(f"area - trilinear_aa: mean {diff.mean():+.4f}, per case min {diff.min():+.4f}, max {diff.max():+.4f}")
    summary = Path(args.out) / "summary.json"
    summary.write_text(json.dumps({"model": args.model, "dice": table, "mean": means}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
