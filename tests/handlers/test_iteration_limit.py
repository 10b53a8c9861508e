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
"""IterationLimit on a small Ignite engine with the real checkpoint handlers: a length that is not a whole number of
epochs is exact, the last iteration is checkpointed, and a resumed run continues to exactly the new length."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from monai_semgan.handlers import IterationLimit, ResumeFromCheckpoint, make_checkpointer

DATA = [torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, -1.0]])]  # 3 per epoch


def make_engine(seed: int = 0) -> tuple[Engine, dict]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(engine: Engine, x: torch.Tensor) -> float:
        optimizer.zero_grad()
        loss = (model(x) - 1).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    engine = Engine(step)
    return engine, {"model": model, "optimizer": optimizer, "trainer": engine}


def train(folder: Path, iterations: int, seed: int = 0, resume: bool = True) -> tuple[Engine, dict]:
    engine, objects = make_engine(seed)
    if resume:
        ResumeFromCheckpoint(folder, objects).attach(engine)
    IterationLimit(iterations).attach(engine)
    make_checkpointer(folder, objects, n_saved=None).attach(engine)
    engine.run(DATA, max_epochs=-(-iterations // len(DATA)))
    return engine, objects


def test_a_length_that_is_not_whole_epochs_is_exact_and_checkpointed(tmp_path: Path) -> None:
    engine, _ = train(tmp_path, iterations=7)
    assert engine.state.iteration == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_3.pt", "checkpoint_6.pt", "checkpoint_7.pt"]
    assert torch.load(tmp_path / "checkpoint_7.pt", weights_only=False)["trainer"]["iteration"] == 7


def test_a_resumed_run_continues_to_exactly_the_new_length_like_an_uninterrupted_one(tmp_path: Path) -> None:
    _, full = train(tmp_path / "full", iterations=11, resume=False)
    train(tmp_path / "parts", iterations=6)
    engine, resumed = train(tmp_path / "parts", iterations=11, seed=1)  # resumes from checkpoint_6
    assert engine.state.iteration == 11
    assert (tmp_path / "parts" / "checkpoint_11.pt").exists()
    for name in ("weight", "bias"):
        torch.testing.assert_close(getattr(resumed["model"], name), getattr(full["model"], name))


def test_a_run_stopped_mid_epoch_resumes_for_exactly_the_missing_iterations(tmp_path: Path) -> None:
    train(tmp_path, iterations=4)
    steps: list[int] = []
    engine, objects = make_engine(seed=1)
    ResumeFromCheckpoint(tmp_path, objects).attach(engine)
    IterationLimit(11).attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: steps.append(e.state.iteration))
    engine.run(DATA, max_epochs=4)
    # Ignite restarts the epoch's data from its beginning (a slightly different order than without the stop), but
    # counts from iteration 4: exactly 7 more iterations
    assert steps == list(range(5, 12)) and engine.state.iteration == 11


def test_resuming_a_finished_run_trains_no_further(tmp_path: Path) -> None:
    train(tmp_path, iterations=5)
    engine, _ = train(tmp_path, iterations=5, seed=1)
    assert engine.state.iteration == 5


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_a_bad_length_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        IterationLimit(bad)  # type: ignore[arg-type]


def test_max_epochs_too_short_for_the_length_is_refused() -> None:
    engine, _ = make_engine()
    IterationLimit(10).attach(engine)
    with pytest.raises(ValueError, match="max_epochs = 2 of 3 iterations cannot reach 10 iterations"):
        engine.run(DATA, max_epochs=2)
