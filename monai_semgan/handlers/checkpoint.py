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
(temporary file, then rename: MONAI's ``CheckpointSaver`` writes in place), keeping the last N, at every epoch end and
when training stops (``--iterations`` in the middle of an epoch, a time limit). A killed run leaves the previous
checkpoints whole and its temporary is removed at the next start; a resume skips a checkpoint that cannot be read
(truncated, corrupt) and says so, continuing from the newest intact one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from monai_semgan.atomic_write import atomic_path, remove_partial_files
from monai_semgan.networks.model_file import network_architecture, save_model

__all__ = [
    "ModelExporter",
    "ResumeFromCheckpoint",
    "TrainingCheckpointer",
    "checkpoints_newest_first",
    "latest_checkpoint",
    "make_checkpointer",
    "save_atomic",
]

_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
# what Ignite's own atomic DiskSaver (0.6.0 and earlier) left when killed: tempfile.NamedTemporaryFile names
_IGNITE_TEMPORARY = re.compile(r"^tmp[a-z0-9_]{8}$")

logger = logging.getLogger(__name__)


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


def checkpoints_newest_first(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint_<iteration>.pt`` files of ``checkpoint_dir``, highest iteration first (empty if none)."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PATTERN.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint of the highest iteration in ``checkpoint_dir`` (``checkpoint_<iteration>.pt``), or ``None``."""
    found = checkpoints_newest_first(checkpoint_dir)
    return found[0] if found else None


class _AtomicDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` writing through :func:`~monai_semgan.atomic_write.atomic_path`, so that a killed write
    leaves a ``.checkpoint_<n>.pt.partial.*`` that the next start recognises and removes."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Any) -> None:
        with atomic_path(path) as tmp:
            func(checkpoint, tmp, **self.kwargs)


class TrainingCheckpointer(Checkpoint):
    """Ignite ``Checkpoint`` of the training objects, saved at every epoch end and when training stops, once per
    iteration (a run that ends on an epoch boundary fires both events at the same iteration)."""

    def attach(self, engine: Engine) -> None:
        """Save on ``EPOCH_COMPLETED`` and ``COMPLETED`` (an exact ``--iterations``, a time limit or ``terminate()``
        end a run in the middle of an epoch)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED | Events.COMPLETED, self)

    def __call__(self, engine: Engine, *args: Any, **kwargs: Any) -> None:
        if self._saved and self._saved[-1].priority == engine.state.iteration:
            return
        super().__call__(engine, *args, **kwargs)


def make_checkpointer(
    checkpoint_dir: str | os.PathLike, to_save: Mapping[str, Any], n_saved: int | None = 3
) -> TrainingCheckpointer:
    """Checkpointer writing ``checkpoint_<iteration>.pt`` atomically and keeping the last ``n_saved``; partial files of
    killed writes found in ``checkpoint_dir`` are removed now.

    Args:
        checkpoint_dir: folder of the checkpoints.
        to_save: objects with ``state_dict`` (networks, optimizers, scaler, the trainer).
        n_saved: checkpoints kept (``None``: all).

    Returns:
        the handler; attach with ``handler.attach(trainer)``.
    """
    folder = Path(checkpoint_dir)
    remove_partial_files(folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            if _IGNITE_TEMPORARY.match(entry.name) and entry.is_file():
                entry.unlink()
                logger.warning(f"{entry}: removed, a partial checkpoint left by an interrupted write.")
    saver = _AtomicDiskSaver(str(folder), require_empty=False, atomic=True, create_dir=True)
    return TrainingCheckpointer(
        dict(to_save),
        saver,
        filename_prefix="",
        n_saved=n_saved,
        global_step_transform=lambda engine, _: engine.state.iteration,
    )


class ResumeFromCheckpoint:
    """Before training starts, load the newest intact checkpoint of a folder (or a given file) into the training
    objects.

    A checkpoint file that cannot be read (truncated by a full disk, corrupt) is skipped with a warning naming it, and
    the next older one is tried; one that reads but does not fit the objects (another architecture) stops training,
    since an older checkpoint of the same run would not fit either.

    Args:
        checkpoint_dir: folder searched for ``checkpoint_<iteration>.pt``.
        to_load: the same objects the checkpointer saves.
        enabled: ``False`` starts from scratch even when checkpoints exist.
        checkpoint: a specific file to load instead of the newest (no fallback).

    Raises:
        FileNotFoundError: when ``checkpoint`` is given and missing.
        ValueError: when a checkpoint cannot be loaded into the objects, when the given ``checkpoint`` cannot be read,
            or when no checkpoint of the folder can be read; the message names the files.
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
        self.skipped: list[Path] = []

    def attach(self, engine: Engine) -> None:
        """Load on ``Events.STARTED``."""
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled and self.checkpoint is None:
            return
        if self.checkpoint is not None:
            if not self.checkpoint.exists():
                raise FileNotFoundError(f"{self.checkpoint}: checkpoint not found.")
            candidates = [self.checkpoint]
        else:
            candidates = checkpoints_newest_first(self.checkpoint_dir)
        for path in candidates:
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as err:
                if self.checkpoint is not None:
                    raise ValueError(f"{path}: cannot read this checkpoint ({err}).") from err
                logger.warning(f"{path}: skipped, cannot be read ({err}); trying the previous checkpoint.")
                self.skipped.append(path)
                continue
            self._load(engine, path, state)
            return
        if self.skipped:
            names = ", ".join(p.name for p in self.skipped)
            raise ValueError(
                f"{self.checkpoint_dir}: no checkpoint can be read ({names}); remove them to start over, or set "
                "--resume false."
            )

    def _load(self, engine: Engine, path: Path, state: Mapping[str, Any]) -> None:
        # a resumed run may be asked to train for longer (or shorter) than the one that wrote the checkpoint
        max_epochs, max_iters = engine.state.max_epochs, engine.state.max_iters
        try:
            Checkpoint.load_objects(self.to_load, state)
        except Exception as err:
            raise ValueError(f"{path}: cannot resume from this checkpoint: {err}") from err
        engine.state.max_epochs, engine.state.max_iters = max_epochs, max_iters
        self.loaded = path
        skipped = f" (skipped {', '.join(p.name for p in self.skipped)})" if self.skipped else ""
        engine.logger.info(f"resumed from {path} at iteration {engine.state.iteration}{skipped}")


class ModelExporter:
    """Write a self-describing model file (``models/model.pt``: architecture + weights, see
    :func:`~monai_semgan.networks.save_model`) atomically, every ``interval`` epochs and at the end of training: the
    EMA generator after GAN training, the segmenter (encoder + generator) after encoder training, the U-Net. Partial
    files that a killed export left beside ``path`` are removed when the exporter is created.

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
        remove_partial_files(self.path.parent, legacy_names=(self.path.name,))
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
