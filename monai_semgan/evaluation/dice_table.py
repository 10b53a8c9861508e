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
"""Dice per method: per-case rows summarized per configuration, written as CSV, shown as markdown tables and bar plots.

A *case row* is one test case scored by one method, as ``benchmarks/quality.py`` collects them from the evaluations'
``dice.csv`` files: ``tag`` (the configuration), ``K`` (labeled training cases), ``method`` (one of :data:`METHODS`),
``test_set``, ``domain`` (``"in"`` or ``"out"``), ``case``, ``dice``, ``hd95_mm`` (NaN when a mask is empty) and
``train_min`` (training wall time of the method, minutes). :func:`summarize` turns them into one *summary row* per
tag, K, method and test set. Values may also be the strings a CSV reader returns: every function converts them.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_semgan.atomic_write import atomic_path
from monai_semgan.evaluation._plotting import new_figure, save_figure

__all__ = [
    "METHODS",
    "dice_markdown",
    "evaluated_methods",
    "merge_history",
    "plot_dice_bars",
    "read_case_dice",
    "summarize",
    "write_csv",
]

METHODS = ("semgan_quick", "semgan_optimize", "unet", "unet_dg", "position_prior")
"""The methods of a quality run, in the order tables and plots show them: SemanticGAN with the encoder only,
SemanticGAN with test-time optimization, the supervised U-Net, the same U-Net trained with GIN + IPA
domain-generalization augmentation, and the position prior that ignores the image."""

_PLOT_LABELS = {"semgan_quick": "SemanticGAN (encoder)", "semgan_optimize": "SemanticGAN (optimize)", "unet": "U-Net",
                "unet_dg": "U-Net + GIN/IPA", "position_prior": "position prior"}  # fmt: skip
_TABLE_NAMES = {"semgan_quick": "SemanticGAN, encoder", "semgan_optimize": "SemanticGAN, optimize", "unet": "U-Net",
                "unet_dg": "U-Net + GIN/IPA", "position_prior": "position prior"}  # fmt: skip


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std of Dice, mean HD95 (over the cases where both masks are non-empty) per tag, K, method and set.

    Args:
        rows: case rows (see the module docstring).

    Returns:
        one summary row per (tag, K, method, test set), in order of first appearance: ``tag``, ``K``, ``method``,
        ``test_set``, ``domain``, ``cases``, ``dice_mean``, ``dice_std`` (population std), ``hd95_mean_mm`` (``""``
        when no case has one), ``empty_predictions`` (cases without HD95), ``train_min``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["tag"], int(r["K"]), r["method"], r["test_set"]), []).append(r)
    out = []
    for (tag, k, method, test_set), rs in groups.items():
        dice = np.array([float(r["dice"]) for r in rs])
        hd = np.array([float(r["hd95_mm"]) if r["hd95_mm"] != "" else np.nan for r in rs])
        out.append({
            "tag": tag, "K": k, "method": method, "test_set": test_set, "domain": rs[0]["domain"], "cases": len(rs),
            "dice_mean": round(float(dice.mean()), 4), "dice_std": round(float(dice.std()), 4),
            "hd95_mean_mm": round(float(np.nanmean(hd)), 2) if np.isfinite(hd).any() else "",
            "empty_predictions": int(np.isnan(hd).sum()), "train_min": round(float(rs[0]["train_min"]), 1),
        })  # fmt: skip
    return out


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``rows`` as a CSV file atomically (a reader never sees half a file); the folder is created.

    The columns are the keys of all rows, in order of first appearance; a row without a column leaves it empty.

    Args:
        rows: the rows.
        path: the CSV file.

    Returns:
        the path written.

    Raises:
        ValueError: when ``rows`` is empty (there would be no header).
    """
    if not rows:
        raise ValueError(f"{path}: no rows to write.")
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_case_dice(path: str | os.PathLike) -> dict[str, float]:
    """The per-case Dice of an evaluation's ``dice.csv`` (as :func:`~monai_semgan.segmentation.write_dice_csv` writes
    it), without its ``mean`` and ``std`` rows.

    Args:
        path: the ``dice.csv`` file.

    Returns:
        ``{case: dice}``; NaN for a case that was not scored (empty reference).
    """
    with open(path, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["case"] not in ("mean", "std")]
    return {r["case"]: float(r["dice"]) if r["dice"] else float("nan") for r in rows}


# the columns that name one result: rows with the same values are one result measured again
_MERGE_KEY = ("tag", "K", "method", "test_set")


def merge_history(summary: Sequence[dict[str, Any]], path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of the CSV file ``path`` (if it exists) that ``summary`` does not replace, then ``summary``: a rerun
    replaces the rows of each (tag, K, method, test set) it holds; other tags, and a tag's other K, methods and test
    sets (a run of one K, or of some methods, beside earlier ones), stay.

    Args:
        summary: the new rows (each with ``tag``, ``K``, ``method`` and ``test_set``).
        path: the CSV file of earlier rows.

    Returns:
        the merged rows.
    """

    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in _MERGE_KEY)

    replaced = {key(r) for r in summary}
    old: list[dict[str, Any]] = []
    if Path(path).exists():
        with open(path, encoding="utf-8") as f:
            old = [r for r in csv.DictReader(f) if key(r) not in replaced]
    return old + list(summary)


def evaluated_methods(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The methods of :data:`METHODS` that ``rows`` hold results for, in :data:`METHODS` order (a run may leave some
    out; methods not in :data:`METHODS` are ignored).

    Args:
        rows: case or summary rows.

    Returns:
        the method names.
    """
    present = {r["method"] for r in rows}
    return [m for m in METHODS if m in present]


def dice_markdown(summary: Sequence[dict[str, Any]]) -> str:
    """One markdown table per tag: K and test set down, the evaluated methods across; cells ``Dice mean (std), HD95
    mm`` (``-`` without HD95, empty where a method has no result).

    Args:
        summary: summary rows (see :func:`summarize`).

    Returns:
        the tables, each headed ``tag `NAME`:``.
    """
    lines: list[str] = []
    for tag in dict.fromkeys(r["tag"] for r in summary):
        rows = [r for r in summary if r["tag"] == tag]
        methods = evaluated_methods(rows)
        lines += [f"tag `{tag}`:", "", "| K | test set | " + " | ".join(_TABLE_NAMES[m] for m in methods) + " |",
                  "|---|---|" + "---:|" * len(methods)]  # fmt: skip
        for k in dict.fromkeys(int(r["K"]) for r in rows):
            for test_set in dict.fromkeys(r["test_set"] for r in rows):
                cells = {r["method"]: r for r in rows if int(r["K"]) == k and r["test_set"] == test_set}
                text = [
                    f"{float(c['dice_mean']):.3f} ({float(c['dice_std']):.3f}), {c['hd95_mean_mm'] or '-'}"
                    if (c := cells.get(m))
                    else ""
                    for m in methods
                ]
                lines.append(f"| {k} | {test_set} | " + " | ".join(text) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_dice_bars(summary: Sequence[dict[str, Any]], tag: str, path: str | os.PathLike, title: str = "") -> Path:
    """Grouped bars of mean Dice (std as error bars) of one tag: one panel per K, test sets along x, one bar per
    evaluated method, each method in a fixed colour (it keeps it when a run leaves others out). Needs matplotlib.

    Args:
        summary: summary rows (see :func:`summarize`); other tags' rows are ignored.
        tag: the tag to plot.
        path: the PNG file (written atomically).
        title: the figure's title (default ``"Liver, <tag>"``).

    Returns:
        the path written.

    Raises:
        ValueError: when ``summary`` holds no result of a method of :data:`METHODS` for ``tag``.
        ImportError: when matplotlib is not installed.
    """
    rows = [r for r in summary if r["tag"] == tag]
    methods = evaluated_methods(rows)
    if not methods:
        raise ValueError(f"no result of any of {METHODS} for tag {tag!r}.")
    ks = sorted({int(r["K"]) for r in rows})
    sets = list(dict.fromkeys(r["test_set"] for r in rows))
    fig = new_figure(figsize=(4.5 * len(ks), 3.6))
    axes = fig.subplots(1, len(ks), sharey=True, squeeze=False)
    width = 0.8 / len(methods)
    for ax, k in zip(axes[0], ks):
        for i, method in enumerate(methods):
            values = {r["test_set"]: r for r in rows if int(r["K"]) == k and r["method"] == method}
            x = np.arange(len(sets)) + (i - (len(methods) - 1) / 2) * width
            mean = [float(values[s]["dice_mean"]) if s in values else np.nan for s in sets]
            std = [float(values[s]["dice_std"]) if s in values else 0.0 for s in sets]
            colour = f"C{METHODS.index(method)}"
            ax.bar(x, mean, width, yerr=std, capsize=2, label=_PLOT_LABELS[method], color=colour)
        ax.set_xticks(np.arange(len(sets)), sets)
        ax.set_title(f"K = {k} labeled case{'s' if k > 1 else ''}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("3-D Dice (mean, std)")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title or f"Liver, {tag}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
