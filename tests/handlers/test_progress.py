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
"""The progress bar and the end-of-training summary on a small Ignite engine: what they print, and only on rank 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from ignite.engine import Engine, Events

from monai_semgan.handlers import TrainingSummary, make_progress_bar


def make_engine(output, rank: int = 0) -> Engine:
    engine = Engine(lambda e, batch: output)
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "rank", rank))
    return engine


def test_summary_names_iterations_and_every_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    engine = make_engine(0.0)
    summary = TrainingSummary({"checkpoints": tmp_path / "checkpoints", "model": tmp_path / "model.pt"}, name="Encoder")
    summary.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: print("epoch done"))
    engine.run(range(3), max_epochs=2)
    lines = capsys.readouterr().out.splitlines()
    # printed once, after the last epoch
    assert lines[:2] == ["epoch done", "epoch done"]
    assert lines[2] == "Encoder training finished: 6 iterations, 0.0 min."
    assert lines[3].split() == ["checkpoints", str(tmp_path / "checkpoints")]
    assert lines[4].split() == ["model", str(tmp_path / "model.pt")]
    assert len(lines) == 5


def test_summary_is_silent_on_other_ranks(capsys: pytest.CaptureFixture) -> None:
    engine = make_engine(0.0, rank=1)
    TrainingSummary({"model": "model.pt"}).attach(engine)
    engine.run(range(2), max_epochs=1)
    assert capsys.readouterr().out == ""


def test_progress_bar_shows_the_chosen_losses(capsys: pytest.CaptureFixture) -> None:
    engine = make_engine({"loss_g": 0.125, "loss_d_image": 2.5, "lr_g": 0.002})
    make_progress_bar(keys=("loss_g", "loss_d_image", "loss_d_joint"), desc="GANbar").attach(engine)
    engine.run(range(4), max_epochs=1)
    err = capsys.readouterr().err
    assert "GANbar" in err and "4/4" in err
    assert "loss_g=0.125" in err and "loss_d_image=2.5" in err
    assert "lr_g" not in err  # not asked for
    assert "loss_d_joint" not in err  # asked for, absent from the output: skipped, no KeyError


def test_progress_bar_with_a_non_dict_output_shows_no_losses(capsys: pytest.CaptureFixture) -> None:
    engine = make_engine(7.25)
    make_progress_bar(desc="plain").attach(engine)
    engine.run(range(3), max_epochs=1)
    err = capsys.readouterr().err
    assert "plain" in err and "3/3" in err and "7.25" not in err


def test_progress_bar_only_on_rank_zero(capsys: pytest.CaptureFixture) -> None:
    engine = Engine(lambda e, batch: {"loss_g": 1.0})
    engine.state.rank = 1  # attach reads the rank before the run
    make_progress_bar(desc="ranked").attach(engine)
    engine.run(range(3), max_epochs=1)
    assert "ranked" not in capsys.readouterr().err
