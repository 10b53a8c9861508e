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
"""Atomic, resumable training checkpoints, and the inference model file.

Checkpoints hold every network, optimizer, the gradient scaler and the trainer's own state (iteration, epoch, images
seen, path-length mean, random generator states), written by Ignite's ``Checkpoint`` through an atomic ``DiskSaver``
(temporary file, then rename: MONAI's ``CheckpointSaver`` writes in place), keeping the last N. A killed run leaves
the previous checkpoints whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_semgan.atomic_write import atomic_path
from monai_semgan.networks.model_file import network_architecture, save_model

__all__ = ["ModelExporter", "ResumeFromCheckpoint", "latest_checkpoint", "make_checkpointer", "save_atomic"]

_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the destination folder, then rename over ``path``.

    Args:
        obj: what to save.
        path: destination.

    Returns:
        the destination path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint of the highest iteration in ``checkpoint_dir`` (``checkpoint_<iteration>.pt``), or ``None``."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PATTERN.match(p.name))]
    return max(found)[1] if found else None


def make_checkpointer(
    checkpoint_dir: str | os.PathLike, to_save: Mapping[str, Any], n_saved: int | None = 3
) -> Checkpoint:
    """Ignite ``Checkpoint`` writing ``checkpoint_<iteration>.pt`` atomically and keeping the last ``n_saved``.

    Args:
        checkpoint_dir: folder of the checkpoints.
        to_save: objects with ``state_dict`` (networks, optimizers, scaler, the trainer).
        n_saved: checkpoints kept (``None``: all).

    Returns:
        the handler; attach with ``trainer.add_event_handler(Events.EPOCH_COMPLETED, handler)``.
    """
    saver = DiskSaver(str(checkpoint_dir), require_empty=False, atomic=True, create_dir=True)
    return Checkpoint(
        dict(to_save),
        saver,
        filename_prefix="",
        n_saved=n_saved,
        global_step_transform=lambda engine, _: engine.state.iteration,
    )


class ResumeFromCheckpoint:
    """Before training starts, load the latest checkpoint of a folder (or a given file) into the training objects.

    Args:
        checkpoint_dir: folder searched for the latest ``checkpoint_<iteration>.pt``.
        to_load: the same objects the checkpointer saves.
        enabled: ``False`` starts from scratch even when checkpoints exist.
        checkpoint: a specific file to load instead of the latest.

    Raises:
        FileNotFoundError: when ``checkpoint`` is given and missing.
        ValueError: when the checkpoint cannot be loaded (other architecture, corrupt file); the message names it.
    """

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike,
        to_load: Mapping[str, Any],
        enabled: bool = True,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.to_load = dict(to_load)
        self.enabled = enabled
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.loaded: Path | None = None

    def attach(self, engine: Engine) -> None:
        """Load on ``Events.STARTED``."""
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled and self.checkpoint is None:
            return
        path = self.checkpoint or latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return
        if not path.exists():
            raise FileNotFoundError(f"{path}: checkpoint not found.")
        max_epochs = engine.state.max_epochs
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            Checkpoint.load_objects(self.to_load, state)
        except Exception as err:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {err}") from err
        # a resumed run may be asked to train for longer than the one that wrote the checkpoint
        engine.state.max_epochs = max_epochs
        self.loaded = path
        engine.logger.info(f"resumed from {path} at iteration {engine.state.iteration}")


class ModelExporter:
    """Write a self-describing model file (``models/model.pt``: architecture + weights, see
    :func:`~monai_semgan.networks.save_model`) atomically, every ``interval`` epochs and at the end of training: the
    EMA generator after GAN training, the segmenter (encoder + generator) after encoder training, the U-Net.

    Args:
        path: destination file.
        model: the module to export; built by :func:`~monai_semgan.networks.build_network` (or loaded by
            :func:`~monai_semgan.networks.load_model`) so that it knows its architecture.
        interval: epochs between exports.
        metadata: plain data stored in the file beside the architecture (e.g. the U-Net's training resolution).

    Raises:
        ValueError: when the model does not know its architecture (checked here, before training starts).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        model: torch.nn.Module,
        interval: int = 1,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        network_architecture(model)
        self.path = Path(path)
        self.model = model
        self.interval = interval
        self.metadata = dict(metadata or {})

    def attach(self, engine: Engine) -> None:
        """Export on ``EPOCH_COMPLETED(every=interval)`` and ``COMPLETED``."""
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if getattr(engine.state, "rank", 0) != 0:
            return
        save_model(self.model, self.path, metadata=self.metadata)
