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
import logging
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

logger = logging.getLogger(__name__)


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

    A reference without any voxel of the structure (often a wrong ``label_values``) has no meaningful Dice: the case is
    listed with an empty score, left out of the mean, and a warning names it. The summary line says how many cases
    were scored. After the run, ``engine.state.metrics`` holds ``mean_dice``, ``mean_hd95`` and ``cases_scored``.

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
            name = case_name(item[self.pred_key])
            if not torch.as_tensor(item[self.label_key]).any():
                logger.warning(
                    f"{name}: the reference has no voxel of the structure (check label_values); not scored, left out "
                    "of the mean."
                )
                self.rows.append({"case": name, "dice": float("nan"), "hd95_mm": float("nan")})
                continue
            dice, hd = case_scores(item[self.pred_key], item[self.label_key], hd95=self.hd95)
            self.rows.append({"case": name, "dice": dice, "hd95_mm": hd})

    def _report(self, engine: Engine) -> None:
        summary = write_dice_csv(self.rows, self.csv_path)
        engine.state.metrics["mean_dice"] = summary["mean_dice"]
        engine.state.metrics["mean_hd95"] = summary["mean_hd95"]
        engine.state.metrics["cases_scored"] = summary["cases_scored"]
        width = max([len(r["case"]) for r in self.rows] + [4])
        lines = [f"{'case':<{width}}  dice    hd95 (mm)"]
        lines += [
            f"{r['case']:<{width}}  {_fmt(r['dice'], 4, 'empty reference'):<6}  {_fmt(r['hd95_mm'])}" for r in self.rows
        ]
        empty = len(self.rows) - summary["cases_scored"]
        lines.append(
            f"{'mean':<{width}}  {_fmt(summary['mean_dice'], 4):<6}  {_fmt(summary['mean_hd95'])}   "
            f"(std {_fmt(summary['std_dice'], 4)}, {summary['cases_scored']} of {len(self.rows)} cases scored"
            + (f"; {empty} with an empty reference left out)" if empty else ")")
        )
        print("\n".join(lines) + f"\nwritten to {self.csv_path}", flush=True)
        if not summary["cases_scored"]:
            logger.warning("no case was scored: every reference is empty (check label_values).")


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
        rows: ``{"case", "dice", "hd95_mm"}`` per case (NaN is written empty: a case not scored, an HD95 without both
            masks).
        path: the CSV file.

    Returns:
        ``mean_dice`` and ``std_dice`` over the scored cases (finite Dice), ``mean_hd95`` over the cases with a finite
        HD95, and ``cases_scored``.
    """
    dice = np.array([r["dice"] for r in rows], dtype=float)
    hd = np.array([r["hd95_mm"] for r in rows], dtype=float)
    scored = dice[np.isfinite(dice)]
    summary = {
        "mean_dice": float(scored.mean()) if scored.size else float("nan"),
        "std_dice": float(scored.std()) if scored.size else float("nan"),
        "mean_hd95": float(np.nanmean(hd)) if np.isfinite(hd).any() else float("nan"),
        "cases_scored": int(scored.size),
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "dice", "hd95_mm"])
    for r in rows:
        writer.writerow([r["case"], _fmt(r["dice"], 4), _fmt(r["hd95_mm"])])
    writer.writerow(["mean", _fmt(summary["mean_dice"], 4), _fmt(summary["mean_hd95"])])
    writer.writerow(["std", _fmt(summary["std_dice"], 4), ""])
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buffer.getvalue())
    return summary


def _fmt(value: float, digits: int = 2, missing: str = "") -> str:
    return missing if math.isnan(value) else f"{value:.{digits}f}"
