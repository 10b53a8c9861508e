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
"""Progress: an Ignite/tqdm bar with the losses and ETA, and a summary of where everything went."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine, Events

__all__ = ["TrainingSummary", "make_progress_bar"]


class _ProgressBarHandler:
    """Wraps Ignite's ``ProgressBar`` so it attaches like a MONAI handler (``handler.attach(engine)``)."""

    def __init__(self, keys: Sequence[str], desc: str) -> None:
        self.keys = tuple(keys)
        self.desc = desc

    def attach(self, engine: Engine) -> None:
        if getattr(engine.state, "rank", 0) != 0:
            return
        bar = ProgressBar(persist=True, desc=self.desc)
        bar.attach(
            engine,
            output_transform=lambda out: {k: out[k] for k in self.keys if k in out} if isinstance(out, dict) else {},
        )


def make_progress_bar(
    keys: Sequence[str] = ("loss_d_image", "loss_d_joint", "loss_g"), desc: str = "SemanticGAN"
) -> _ProgressBarHandler:
    """A progress bar (iteration, epoch, ETA) showing the given entries of ``engine.state.output``.

    Args:
        keys: output entries to show (entries of a dict output; nothing for other outputs).
        desc: the bar's label.

    Returns:
        a handler with ``attach``.
    """
    return _ProgressBarHandler(keys, desc)


class TrainingSummary:
    """At the end of training, print how long it took and where the checkpoints, model, logs and samples are.

    Args:
        paths: label -> path, e.g. ``{"checkpoints": ..., "model": ..., "TensorBoard": ..., "samples": ...}``.
        name: what was trained, for the message.
    """

    def __init__(self, paths: dict[str, str | os.PathLike], name: str = "SemanticGAN") -> None:
        self.paths = {k: str(v) for k, v in paths.items()}
        self.name = name
        self.start = time.perf_counter()

    def attach(self, engine: Engine) -> None:
        """Print on ``COMPLETED``."""
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self.start = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        if getattr(engine.state, "rank", 0) != 0:
            return
        minutes = (time.perf_counter() - self.start) / 60
        lines = [f"{self.name} training finished: {engine.state.iteration} iterations, {minutes:.1f} min."]
        lines += [f"  {label:<12} {path}" for label, path in self.paths.items()]
        print("\n".join(lines), flush=True)
