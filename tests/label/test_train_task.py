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
"""The training task's request options and the reason it gives for a failed run (read from the run's output)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("monailabel", reason="MONAI Label is not installed (pip install -e '.[label]')")

from monai_semgan.label import SemanticGanTrainTask, failure_reason  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "liver_ct"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # monai_semgan.error_report's last line: a user error as it is, another error with its type
        ("step 1\n(traceback: run again with --debug true)\nerror: /s/labels/final/b.nii.gz: cannot read\n",
         ("/s/labels/final/b.nii.gz: cannot read", True)),
        ("error: RuntimeError: CUDA out of memory\n", ("RuntimeError: CUDA out of memory", False)),
        # a full traceback: the root error, not MONAI's wrapper around it
        ("Traceback (most recent call last):\nValueError: num_labeled=3 but only 2\n\nThe above exception\n"
         "Traceback (most recent call last):\nRuntimeError: Failed to evaluate ConfigExpression:\n  $@split\n",
         ("num_labeled=3 but only 2", True)),
        ("Traceback:\ntorch.OutOfMemoryError: CUDA out of memory\n", ("OutOfMemoryError: CUDA out of memory", False)),
        ("Killed\n", ("Killed", False)),
        ("", ("no output", False)),
    ],
)  # fmt: skip
def test_failure_reason(output: str, expected: tuple[str, bool]) -> None:
    assert failure_reason(output) == expected


def test_request_options_are_checked(tmp_path: Path) -> None:
    task = SemanticGanTrainTask(BUNDLE, tmp_path, tmp_path / "model.pt", gan_iterations=6, encoder_iterations=4)
    assert task.check_request({}) == (6, 4)
    assert task.check_request({"gan_iterations": "2", "encoder_iterations": 3.0}) == (2, 3)
    for bad in (
        {"gan_iterations": "many"},
        {"gan_iterations": 0},
        {"encoder_iterations": 2.5},
        {"gan_iterations": None},
    ):
        with pytest.raises(ValueError, match="iterations"):
            task.check_request(bad)
