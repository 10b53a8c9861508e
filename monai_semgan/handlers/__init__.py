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
"""Ignite handlers of training: atomic checkpoints and resume, exact length, model export, sample grids, progress."""

from __future__ import annotations

from monai_semgan.handlers.checkpoint import (
    ModelExporter,
    ResumeFromCheckpoint,
    TrainingCheckpointer,
    checkpoints_newest_first,
    latest_checkpoint,
    make_checkpointer,
    save_atomic,
)
from monai_semgan.handlers.iteration_limit import IterationLimit
from monai_semgan.handlers.progress import TrainingSummary, make_progress_bar
from monai_semgan.handlers.sample_grid import ReconstructionGridHandler, SampleGridHandler, overlay_grid
from monai_semgan.handlers.summary_writer import NullSummaryWriter, rank_zero_summary_writer

__all__ = [
    "IterationLimit",
    "ModelExporter",
    "NullSummaryWriter",
    "ReconstructionGridHandler",
    "ResumeFromCheckpoint",
    "SampleGridHandler",
    "TrainingCheckpointer",
    "TrainingSummary",
    "checkpoints_newest_first",
    "latest_checkpoint",
    "make_checkpointer",
    "make_progress_bar",
    "overlay_grid",
    "rank_zero_summary_writer",
    "save_atomic",
]
