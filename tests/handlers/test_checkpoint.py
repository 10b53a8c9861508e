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
"""The checkpoint handlers on a small Ignite engine and real files: make_checkpointer's files, pruning, saving when a
run stops mid-epoch and cleaning up killed writes; latest_checkpoint's choice; ResumeFromCheckpoint's exact resume,
its fallback past unreadable checkpoints and its errors; save_atomic."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from monai_semgan.handlers import ResumeFromCheckpoint, latest_checkpoint, make_checkpointer, save_atomic

# three iterations per epoch
DATA = [torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, -1.0]])]


def make_engine(seed: int = 0, in_features: int = 2) -> tuple[Engine, dict]:
    """A linear model trained by SGD with momentum, so an exact resume needs the optimizer's state too."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(in_features, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(engine: Engine, x: torch.Tensor) -> float:
        optimizer.zero_grad()
        loss = (model(x) - 1).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    engine = Engine(step)
    return engine, {"model": model, "optimizer": optimizer, "trainer": engine}


def iteration_at_start(engine: Engine) -> list[int]:
    """The iteration the engine starts from, after the handlers attached before this one ran."""
    seen: list[int] = []
    engine.add_event_handler(Events.STARTED, lambda e: seen.append(e.state.iteration))
    return seen


def train_with_checkpoints(folder: Path, epochs: int, n_saved: int | None = 3) -> dict:
    engine, objects = make_engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, make_checkpointer(folder, objects, n_saved=n_saved))
    engine.run(DATA, max_epochs=epochs)
    return objects


def test_checkpointer_names_files_by_iteration_and_keeps_the_last_n(tmp_path: Path) -> None:
    objects = train_with_checkpoints(tmp_path, epochs=4, n_saved=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_12.pt", "checkpoint_9.pt"]
    state = torch.load(tmp_path / "checkpoint_12.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 12
    torch.testing.assert_close(state["model"]["weight"], objects["model"].weight.detach())
    assert state["optimizer"]["state"]  # the momentum buffers are saved


def test_checkpointer_keeps_all_with_n_saved_none(tmp_path: Path) -> None:
    train_with_checkpoints(tmp_path / "new" / "folder", epochs=3, n_saved=None)
    names = sorted(p.name for p in (tmp_path / "new" / "folder").iterdir())
    assert names == ["checkpoint_3.pt", "checkpoint_6.pt", "checkpoint_9.pt"]


def test_latest_checkpoint_is_the_highest_iteration_not_the_last_name(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    for name in ["model.pt", "checkpoint_7.pt.part", ".checkpoint_50.pt.x1y2", "checkpoint_x.pt", "checkpoint_.pt"]:
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) is None
    for iteration in (9, 12, 100, 2):
        (tmp_path / f"checkpoint_{iteration}.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_100.pt"
    assert latest_checkpoint(str(tmp_path)) == tmp_path / "checkpoint_100.pt"


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    full, full_objects = make_engine(seed=0)
    full.run(DATA, max_epochs=4)

    train_with_checkpoints(tmp_path, epochs=2)  # checkpoint_6.pt, written with max_epochs 2
    resumed, objects = make_engine(seed=1)  # another start: everything must come from the file
    loader = ResumeFromCheckpoint(tmp_path, objects)
    loader.attach(resumed)
    started = iteration_at_start(resumed)
    resumed.run(DATA, max_epochs=4)  # asked for longer than the run that wrote the checkpoint

    assert loader.loaded == tmp_path / "checkpoint_6.pt"
    assert started == [6] and resumed.state.iteration == 12 and resumed.state.epoch == 4
    for name in ("weight", "bias"):
        torch.testing.assert_close(getattr(objects["model"], name), getattr(full_objects["model"], name))


def test_resume_with_nothing_to_load_starts_from_scratch(tmp_path: Path) -> None:
    engine, objects = make_engine()
    loader = ResumeFromCheckpoint(tmp_path / "empty", objects)
    loader.attach(engine)
    started = iteration_at_start(engine)
    engine.run(DATA, max_epochs=1)
    assert loader.loaded is None and started == [0] and engine.state.iteration == 3


def test_disabled_resume_ignores_the_folder_but_not_a_named_file(tmp_path: Path) -> None:
    train_with_checkpoints(tmp_path, epochs=2)

    engine, objects = make_engine()
    loader = ResumeFromCheckpoint(tmp_path, objects, enabled=False)
    loader.attach(engine)
    started = iteration_at_start(engine)
    engine.run(DATA, max_epochs=1)
    assert loader.loaded is None and started == [0]

    engine, objects = make_engine()
    loader = ResumeFromCheckpoint(tmp_path, objects, enabled=False, checkpoint=tmp_path / "checkpoint_3.pt")
    loader.attach(engine)
    started = iteration_at_start(engine)
    engine.run(DATA, max_epochs=2)
    assert loader.loaded == tmp_path / "checkpoint_3.pt" and started == [3] and engine.state.iteration == 6


def test_a_named_checkpoint_that_is_missing_is_refused(tmp_path: Path) -> None:
    engine, objects = make_engine()
    ResumeFromCheckpoint(tmp_path, objects, checkpoint=tmp_path / "nope.pt").attach(engine)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt: checkpoint not found"):
        engine.run(DATA, max_epochs=1)


def test_resume_skips_an_unreadable_newest_checkpoint_and_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train_with_checkpoints(tmp_path, epochs=3)  # checkpoint_3, _6, _9
    newest = tmp_path / "checkpoint_9.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated, as by a full disk
    (tmp_path / "checkpoint_12.pt").write_bytes(b"not a checkpoint")

    engine, objects = make_engine(seed=1)
    loader = ResumeFromCheckpoint(tmp_path, objects)
    loader.attach(engine)
    started = iteration_at_start(engine)
    with caplog.at_level(logging.WARNING, logger="monai_semgan.handlers.checkpoint"):
        engine.run(DATA, max_epochs=3)
    assert loader.loaded == tmp_path / "checkpoint_6.pt" and started == [6] and engine.state.iteration == 9
    assert loader.skipped == [tmp_path / "checkpoint_12.pt", newest]
    warned = [r.getMessage() for r in caplog.records]
    assert any("checkpoint_12.pt: skipped" in m for m in warned) and any(
        "checkpoint_9.pt: skipped" in m for m in warned
    )
    expected = torch.load(tmp_path / "checkpoint_6.pt", weights_only=False)["trainer"]["iteration"]
    assert expected == 6


def test_no_readable_checkpoint_is_refused_with_their_names(tmp_path: Path) -> None:
    (tmp_path / "checkpoint_99.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "checkpoint_50.pt").write_bytes(b"")
    engine, objects = make_engine()
    ResumeFromCheckpoint(tmp_path, objects).attach(engine)
    with pytest.raises(ValueError, match=r"no checkpoint can be read \(checkpoint_99\.pt, checkpoint_50\.pt\)"):
        engine.run(DATA, max_epochs=1)


def test_a_named_unreadable_checkpoint_is_refused_without_fallback(tmp_path: Path) -> None:
    train_with_checkpoints(tmp_path, epochs=1)
    (tmp_path / "checkpoint_99.pt").write_bytes(b"not a checkpoint")
    engine, objects = make_engine()
    ResumeFromCheckpoint(tmp_path, objects, checkpoint=tmp_path / "checkpoint_99.pt").attach(engine)
    with pytest.raises(ValueError, match=r"checkpoint_99\.pt: cannot read this checkpoint"):
        engine.run(DATA, max_epochs=1)


def test_checkpointer_saves_when_a_run_stops_mid_epoch_and_once_per_iteration(tmp_path: Path) -> None:
    engine, objects = make_engine()
    make_checkpointer(tmp_path / "a", objects, n_saved=None).attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=4), lambda e: e.terminate())
    engine.run(DATA, max_epochs=3)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint_3.pt", "checkpoint_4.pt"]

    engine, objects = make_engine()
    checkpointer = make_checkpointer(tmp_path / "b", objects, n_saved=None)
    checkpointer.attach(engine)
    engine.run(DATA, max_epochs=2)  # the last epoch end and COMPLETED fire at the same iteration
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["checkpoint_3.pt", "checkpoint_6.pt"]
    assert [item.filename for item in checkpointer._saved] == ["checkpoint_3.pt", "checkpoint_6.pt"]


def test_checkpointer_removes_partial_files_of_killed_writes_and_nothing_else(tmp_path: Path) -> None:
    train_with_checkpoints(tmp_path, epochs=1)
    left = [".checkpoint_6.pt.partial.k3j2h1g0", "tmpa1b2c3d4"]  # this version's temporary, Ignite's (0.6.0)
    kept = ["checkpoint_3.pt", "notes.txt", "tmp_notes.txt", ".hidden"]
    for name in left + kept[1:]:
        (tmp_path / name).write_bytes(b"partial")
    engine, objects = make_engine()
    make_checkpointer(tmp_path, objects)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_checkpoint_of_another_model_is_refused_with_its_name(tmp_path: Path) -> None:
    train_with_checkpoints(tmp_path, epochs=1)
    engine, objects = make_engine(in_features=3)
    ResumeFromCheckpoint(tmp_path, objects).attach(engine)
    with pytest.raises(ValueError, match=r"(?s)checkpoint_3\.pt: cannot resume from this checkpoint.*size mismatch"):
        engine.run(DATA, max_epochs=1)


def test_save_atomic_replaces_the_file_whole_or_not_at_all(tmp_path: Path) -> None:
    dest = tmp_path / "state.pt"
    assert save_atomic({"a": torch.arange(3)}, dest) == dest
    first_inode = dest.stat().st_ino
    save_atomic({"a": torch.arange(5)}, dest)
    assert torch.equal(torch.load(dest)["a"], torch.arange(5)) and dest.stat().st_ino != first_inode

    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_atomic({"a": torch.zeros(1), "f": lambda: None}, dest)  # fails part way through pickling
    assert torch.equal(torch.load(dest)["a"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
