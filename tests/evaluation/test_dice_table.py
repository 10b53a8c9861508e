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
"""Dice tables: summaries of case rows, CSV files written and read back, the history of tags, markdown and plots."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

from monai_semgan.evaluation import (
    dice_markdown,
    evaluated_methods,
    merge_history,
    plot_dice_bars,
    read_case_dice,
    summarize,
    write_csv,
)
from monai_semgan.segmentation import write_dice_csv


def case_rows(tag: str = "t") -> list[dict]:
    rows = []
    for method, dices, hds in (("unet", (0.5, 0.7), (10.0, float("nan"))), ("semgan_quick", (0.8,), (4.0,))):
        for i, (dice, hd) in enumerate(zip(dices, hds)):
            rows.append({"tag": tag, "K": 1, "method": method, "test_set": "ct", "domain": "in", "case": f"c{i}",
                         "dice": dice, "hd95_mm": hd, "train_min": 12.34, "eval_s_per_case": 1.0})  # fmt: skip
    return rows


def read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_summary_per_tag_k_method_and_set() -> None:
    summary = summarize(case_rows())
    assert [(r["method"], r["cases"]) for r in summary] == [("unet", 2), ("semgan_quick", 1)]
    unet = summary[0]
    assert unet["dice_mean"] == pytest.approx(0.6) and unet["dice_std"] == pytest.approx(0.1)
    # HD95 over the cases where both masks are non-empty; the other one counts as an empty prediction
    assert unet["hd95_mean_mm"] == 10.0 and unet["empty_predictions"] == 1 and unet["train_min"] == 12.3
    assert summary[1]["hd95_mean_mm"] == 4.0 and summary[1]["empty_predictions"] == 0


def test_summary_of_rows_read_back_from_csv_is_the_same(tmp_path: Path) -> None:
    rows = case_rows()
    rows[0]["hd95_mm"] = float("nan")  # every unet case without HD95: the mean is left empty
    rows[1]["hd95_mm"] = float("nan")
    write_csv(rows, tmp_path / "cases.csv")
    again = summarize(read(tmp_path / "cases.csv"))  # strings, as a CSV reader returns them
    assert again == summarize(rows)
    assert again[0]["hd95_mean_mm"] == "" and again[0]["empty_predictions"] == 2


def test_csv_columns_are_the_union_of_the_rows_keys(tmp_path: Path) -> None:
    path = write_csv([{"a": 1, "b": 2}, {"a": 3, "c": 4}], tmp_path / "sub" / "rows.csv")
    assert path.read_text(encoding="utf-8") == "a,b,c\n1,2,\n3,,4\n"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    with pytest.raises(ValueError, match="no rows"):
        write_csv([], tmp_path / "empty.csv")


def test_case_dice_of_an_evaluations_dice_csv(tmp_path: Path) -> None:
    rows = [{"case": "image_1", "dice": 0.81234, "hd95_mm": 3.0}, {"case": "image_2", "dice": 0.5, "hd95_mm": math.nan}]
    write_dice_csv(rows, tmp_path / "dice.csv")
    assert read_case_dice(tmp_path / "dice.csv") == {"image_1": 0.8123, "image_2": 0.5}


def test_history_keeps_other_tags_and_replaces_a_rerun_tag(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    assert merge_history(summarize(case_rows("a")), path) == summarize(case_rows("a"))  # no file yet
    write_csv(summarize(case_rows("a")) + summarize(case_rows("b")), path)
    merged = merge_history(summarize(case_rows("b")), path)
    assert [r["tag"] for r in merged] == ["a", "a", "b", "b"]
    assert isinstance(merged[0]["K"], str) and isinstance(merged[-1]["K"], int)  # old rows as read, new as given


def test_history_keeps_a_tags_other_k_and_methods(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    k8 = [dict(r, K=8) for r in case_rows("a")]
    write_csv(k8 + case_rows("a"), path)
    # a run of K = 1 with one method replaces that method's K = 1 rows only
    rerun = [dict(r, dice=0.1) for r in case_rows("a") if r["method"] == "unet"]
    merged = merge_history(rerun, path)
    assert len(merged) == len(k8) + len(case_rows("a"))
    assert [r["dice"] for r in merged if str(r["K"]) == "1" and r["method"] == "unet"] == [0.1, 0.1]
    assert sorted(str(r["K"]) for r in merged if r["method"] == "semgan_quick") == ["1", "8"]


def test_report_shows_only_the_methods_a_tag_evaluated(tmp_path: Path) -> None:
    rows = [
        {"tag": "screen", "K": k, "method": m, "test_set": s, "domain": "in", "cases": 1, "dice_mean": 0.5,
         "dice_std": 0.1, "hd95_mean_mm": 10.0, "empty_predictions": 0, "train_min": 1.0}
        for k in (1, 2) for m in ("semgan_quick", "unet") for s in ("a", "b")
    ]  # fmt: skip
    assert evaluated_methods(rows) == ["semgan_quick", "unet"]
    table = dice_markdown(rows)
    assert "optimize" not in table
    assert "| K | test set | SemanticGAN, encoder | U-Net |" in table
    assert "| 1 | a | 0.500 (0.100), 10.0 | 0.500 (0.100), 10.0 |" in table
    pytest.importorskip("matplotlib")
    assert plot_dice_bars(rows, "screen", tmp_path / "screen.png") == tmp_path / "screen.png"
    assert (tmp_path / "screen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "screen.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="no result"):
        plot_dice_bars(rows, "other", tmp_path / "other.png")


def test_markdown_leaves_a_missing_result_empty() -> None:
    summary = summarize(case_rows())
    summary.append(dict(summary[0], test_set="mri", method="unet", hd95_mean_mm=""))
    table = dice_markdown(summary)
    assert "| 1 | ct | 0.800 (0.000), 4.0 | 0.600 (0.100), 10.0 |" in table
    assert "| 1 | mri |  | 0.600 (0.100), - |" in table


def test_a_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what Python does when the package is absent
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_dice_bars(summarize(case_rows()), "t", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
