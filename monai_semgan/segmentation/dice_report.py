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

__all__ = ["DiceReport", "case_name", "case_scores", "write_dice_csv"]


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
            dice, hd = case_scores(item[self.pred_key], item[self.label_key], hd95=self.hd95)
            self.rows.append({"case": case_name(item[self.pred_key]), "dice": dice, "hd95_mm": hd})

    def _report(self, engine: Engine) -> None:
        summary = write_dice_csv(self.rows, self.csv_path)
        engine.state.metrics["mean_dice"] = summary["mean_dice"]
        engine.state.metrics["mean_hd95"] = summary["mean_hd95"]
        width = max([len(r["case"]) for r in self.rows] + [4])
        lines = [f"{'case':<{width}}  dice    hd95 (mm)"]
        lines += [f"{r['case']:<{width}}  {r['dice']:.4f}  {_fmt(r['hd95_mm'])}" for r in self.rows]
        lines.append(
            f"{'mean':<{width}}  {summary['mean_dice']:.4f}  {_fmt(summary['mean_hd95'])}   "
            f"(std {summary['std_dice']:.4f}, {len(self.rows)} cases)"
        )
        print("\n".join(lines) + f"\nwritten to {self.csv_path}", flush=True)


def case_scores(pred: Any, label: Any, hd95: bool = True) -> tuple[float, float]:
    """3-D Dice and 95 % Hausdorff distance (mm, from ``label``'s affine; NaN when either mask is empty or ``hd95``
    is off) of two binary masks ``[1, H, W, D]`` on the same grid.

    Args:
        pred: the predicted mask.
        label: the reference mask (a MetaTensor carries the affine that gives the spacing).
        hd95: also compute the Hausdorff distance.

    Returns:
        ``(dice, hd95_mm)``.
    """
    p = torch.as_tensor(pred).float()[None]
    y = torch.as_tensor(label).float()[None]
    dice = float(compute_dice(p, y, include_background=True, ignore_empty=False)[0, 0])
    hd = float("nan")
    if hd95 and p.sum() > 0 and y.sum() > 0:
        affine = np.asarray(getattr(label, "affine", np.eye(4)), dtype=float)
        spacing = np.linalg.norm(affine[:3, :3], axis=0).tolist()
        with warnings.catch_warnings():
            # MONAI 1.5+ warns about an argument it passes itself (get_mask_edges)
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            hd = float(compute_hausdorff_distance(p, y, percentile=95, spacing=spacing)[0, 0])
    return dice, hd


def write_dice_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> dict[str, float]:
    """Write ``dice.csv`` atomically: one row per case (``case``, ``dice``, ``hd95_mm``), then the mean and std.

    Args:
        rows: ``{"case", "dice", "hd95_mm"}`` per case (NaN HD95 is written empty).
        path: the CSV file.

    Returns:
        ``mean_dice``, ``std_dice`` and ``mean_hd95`` (over the cases with a finite HD95).
    """
    dice = np.array([r["dice"] for r in rows], dtype=float)
    hd = np.array([r["hd95_mm"] for r in rows], dtype=float)
    summary = {
        "mean_dice": float(dice.mean()) if dice.size else float("nan"),
        "std_dice": float(dice.std()) if dice.size else float("nan"),
        "mean_hd95": float(np.nanmean(hd)) if np.isfinite(hd).any() else float("nan"),
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "dice", "hd95_mm"])
    for r in rows:
        writer.writerow([r["case"], f"{r['dice']:.4f}", _fmt(r["hd95_mm"])])
    writer.writerow(["mean", f"{summary['mean_dice']:.4f}", _fmt(summary["mean_hd95"])])
    writer.writerow(["std", f"{summary['std_dice']:.4f}", ""])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buffer.getvalue())
    return summary


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"
