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
"""Per-case 3-D Dice (and 95 % Hausdorff distance) of an evaluation run, printed and written to ``dice.csv``."""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.metrics import compute_dice, compute_hausdorff_distance

from monai_semgan.atomic_write import atomic_path

__all__ = ["DiceReport", "case_name"]


def case_name(item: Any) -> str:
    """A case's name from its MetaTensor's source file: ``image_3.nii.gz`` -> ``image_3``; a folder keeps its name."""
    source = str(getattr(item, "meta", {}).get("filename_or_obj", "case"))
    name = Path(source).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class DiceReport:
    """Collect per-case 3-D Dice and HD95 from an evaluator's decollated outputs (binary masks ``pred`` and ``label``
    on the input's grid), then print a table and write ``csv_path`` atomically (one row per case, then the mean).

    After the run, ``engine.state.metrics`` holds ``mean_dice`` and ``mean_hd95``.

    Args:
        csv_path: the CSV file (``dice.csv``).
        pred_key: key of the predicted mask.
        label_key: key of the reference mask.
        hd95: also compute the 95 % Hausdorff distance (mm, using the volume's spacing).
    """

    def __init__(
        self, csv_path: str | os.PathLike, pred_key: str = "pred", label_key: str = "label", hd95: bool = True
    ):
        self.csv_path = Path(csv_path)
        self.pred_key, self.label_key = pred_key, label_key
        self.hd95 = hd95
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        """Collect on ``ITERATION_COMPLETED``, report on ``COMPLETED``."""
        engine.add_event_handler(Events.STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _collect(self, engine: Engine) -> None:
        items = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        for item in items:
            pred = torch.as_tensor(item[self.pred_key]).float()[None]
            label = torch.as_tensor(item[self.label_key]).float()[None]
            dice = float(compute_dice(pred, label, include_background=True, ignore_empty=False)[0, 0])
            hd = float("nan")
            if self.hd95 and pred.sum() > 0 and label.sum() > 0:
                affine = np.asarray(getattr(item[self.label_key], "affine", np.eye(4)), dtype=float)
                spacing = np.linalg.norm(affine[:3, :3], axis=0).tolist()
                with warnings.catch_warnings():
                    # MONAI 1.5+ warns about an argument it passes itself (get_mask_edges)
                    warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
                    hd = float(compute_hausdorff_distance(pred, label, percentile=95, spacing=spacing)[0, 0])
            self.rows.append({"case": case_name(item[self.pred_key]), "dice": dice, "hd95_mm": hd})

    def _report(self, engine: Engine) -> None:
        dice = np.array([r["dice"] for r in self.rows], dtype=float)
        hd = np.array([r["hd95_mm"] for r in self.rows], dtype=float)
        mean_dice = float(dice.mean()) if dice.size else float("nan")
        std_dice = float(dice.std()) if dice.size else float("nan")
        mean_hd = float(np.nanmean(hd)) if np.isfinite(hd).any() else float("nan")
        engine.state.metrics["mean_dice"] = mean_dice
        engine.state.metrics["mean_hd95"] = mean_hd
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["case", "dice", "hd95_mm"])
        for r in self.rows:
            writer.writerow([r["case"], f"{r['dice']:.4f}", _fmt(r["hd95_mm"])])
        writer.writerow(["mean", f"{mean_dice:.4f}", _fmt(mean_hd)])
        writer.writerow(["std", f"{std_dice:.4f}", ""])
        with atomic_path(self.csv_path) as tmp:
            tmp.write_text(buffer.getvalue())
        width = max([len(r["case"]) for r in self.rows] + [4])
        lines = [f"{'case':<{width}}  dice    hd95 (mm)"]
        lines += [f"{r['case']:<{width}}  {r['dice']:.4f}  {_fmt(r['hd95_mm'])}" for r in self.rows]
        lines.append(f"{'mean':<{width}}  {mean_dice:.4f}  {_fmt(mean_hd)}   (std {std_dice:.4f}, {dice.size} cases)")
        print("\n".join(lines) + f"\nwritten to {self.csv_path}", flush=True)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"
