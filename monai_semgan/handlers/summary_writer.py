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
"""A TensorBoard writer for rank 0 and a silent stand-in for the other ranks, so only one process writes logs."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

__all__ = ["NullSummaryWriter", "rank_zero_summary_writer"]


class NullSummaryWriter:
    """Accepts every ``SummaryWriter`` call and writes nothing (for ranks other than 0)."""

    def __getattr__(self, name: str) -> Any:
        def _ignore(*args: Any, **kwargs: Any) -> None:
            return None

        return _ignore


def rank_zero_summary_writer(log_dir: str | os.PathLike) -> SummaryWriter | NullSummaryWriter:
    """``SummaryWriter(log_dir)`` on rank 0 (or without ``torch.distributed``), a :class:`NullSummaryWriter` elsewhere.

    Args:
        log_dir: TensorBoard log folder.

    Returns:
        the writer.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return NullSummaryWriter()
    return SummaryWriter(log_dir=str(log_dir))
