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
"""Train for exactly ``iterations`` iterations, also when that is not a whole number of epochs."""

from __future__ import annotations

from ignite.engine import Engine, Events

__all__ = ["IterationLimit"]


class IterationLimit:
    """Stop a MONAI / Ignite trainer after exactly ``iterations`` iterations (Ignite's ``max_iters``).

    MONAI's ``Workflow.run`` counts in epochs, so ``max_epochs`` alone rounds a length up to whole epochs. This handler
    sets Ignite's iteration limit when the run starts (after a resume too), so training stops in the middle of an
    epoch when it has to; ``COMPLETED`` still fires, so checkpointers and exporters attached to it save the last
    iteration. The trainer's ``max_epochs`` must cover ``iterations`` (``ceil(iterations / epoch_length)``).

    A run resumed from a checkpoint written in the middle of an epoch continues with exactly the missing iterations;
    Ignite starts that epoch's data from its beginning, so the data order differs slightly from an uninterrupted run
    (a resume from an epoch end is exact).

    Args:
        iterations: total iterations of the run, counted from the start of training (a resumed run continues to it).

    Raises:
        ValueError: when ``iterations`` is not a positive integer.
    """

    def __init__(self, iterations: int) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}.")
        self.iterations = iterations

    def attach(self, engine: Engine) -> None:
        """Set the limit on ``Events.STARTED``."""
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        epoch_length = engine.state.epoch_length
        if (
            engine.state.max_epochs is not None
            and epoch_length
            and engine.state.max_epochs * epoch_length < self.iterations
        ):
            raise ValueError(
                f"max_epochs = {engine.state.max_epochs} of {epoch_length} iterations cannot reach {self.iterations} "
                "iterations; raise max_epochs."
            )
        engine.state.max_iters = self.iterations
