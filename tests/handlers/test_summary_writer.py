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
"""rank_zero_summary_writer: a real TensorBoard log on rank 0 (with or without torch.distributed), a writer that
writes nothing on the other ranks (two gloo processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from monai_semgan.handlers import NullSummaryWriter, rank_zero_summary_writer


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_without_distributed_it_is_a_tensorboard_writer(tmp_path: Path) -> None:
    assert not dist.is_initialized()
    writer = rank_zero_summary_writer(tmp_path / "logs" / "tb")
    assert isinstance(writer, SummaryWriter)
    writer.add_scalar("loss_g", 0.5, 3)
    writer.close()
    assert scalars(tmp_path / "logs" / "tb", "loss_g") == [(3, 0.5)]


def test_rank_zero_of_a_process_group_writes(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        writer = rank_zero_summary_writer(tmp_path / "tb")
        assert isinstance(writer, SummaryWriter)
        writer.add_scalar("loss_d", 1.5, 1)
        writer.close()
    finally:
        dist.destroy_process_group()
    assert scalars(tmp_path / "tb", "loss_d") == [(1, 1.5)]


def test_null_writer_accepts_every_call_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    writer = NullSummaryWriter()
    assert writer.add_scalar("loss", 1.0, 1) is None
    assert writer.add_image("grid", object(), 1, dataformats="HWC") is None
    assert writer.flush() is None and writer.close() is None
    assert writer.any_method_at_all(1, key=2) is None
    assert list(tmp_path.iterdir()) == []


def _two_ranks(rank: int, folder: str) -> None:
    folder_path = Path(folder)
    dist.init_process_group("gloo", init_method=f"file://{folder_path / 'init'}", rank=rank, world_size=2)
    try:
        writer = rank_zero_summary_writer(folder_path / "tb")  # the same folder on both ranks
        writer.add_scalar("rank", float(rank), 1)
        writer.close()
        (folder_path / f"rank{rank}.txt").write_text(type(writer).__name__)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_only_rank_zero_writes_in_two_processes(tmp_path: Path) -> None:
    mp.spawn(_two_ranks, args=(str(tmp_path),), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "SummaryWriter"
    assert (tmp_path / "rank1.txt").read_text() == "NullSummaryWriter"
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    assert scalars(tmp_path / "tb", "rank") == [(1, 0.0)]
