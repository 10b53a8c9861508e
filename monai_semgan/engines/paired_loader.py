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
"""One iterable over the labeled and the unlabeled slice loaders, reproducible per epoch.

The trainer needs a labeled and an unlabeled batch every iteration, from loaders of very different lengths (one labeled
volume, many unlabeled). :class:`PairedSliceLoader` cycles both for a fixed number of iterations per epoch, and seeds
every epoch from ``(seed, epoch)``: an epoch's batches depend on nothing else, so a run resumed from an epoch-end
checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from monai.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

__all__ = ["PairedSliceLoader"]


class PairedSliceLoader:
    """Yields ``{"unlabeled": batch, "labeled": batch}`` for ``epoch_length`` iterations per epoch.

    Args:
        unlabeled: loader of unlabeled slices (``"image"``).
        labeled: loader of labeled slices (``"image"``, ``"label"``).
        epoch_length: iterations per epoch.
        seed: base seed; epoch ``e`` (counted from 1 by :meth:`set_epoch`) is seeded from ``(seed, e)``.

    Raises:
        ValueError: when ``epoch_length`` < 1 or a loader yields no batch.
    """

    def __init__(self, unlabeled: DataLoader, labeled: DataLoader, epoch_length: int, seed: int = 0) -> None:
        if epoch_length < 1:
            raise ValueError(f"epoch_length must be >= 1, got {epoch_length}.")
        self.unlabeled = unlabeled
        self.labeled = labeled
        self.epoch_length = epoch_length
        self.seed = seed
        self.epoch = 1

    def __len__(self) -> int:
        return self.epoch_length

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batches the next iteration yields (the trainer calls this at each epoch start)."""
        self.epoch = epoch

    def _cycle(self, loader: DataLoader, stream: int) -> Iterator[dict]:
        cycle = 0
        while True:
            seed = (self.seed * 1_000_003 + self.epoch * 1009 + stream * 101 + cycle) % (2**31)
            generator = getattr(loader, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(seed)
            sampler = getattr(loader, "sampler", None)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(self.epoch * 1000 + cycle)
            dataset = loader.dataset
            # a SliceSampleDataset seeds itself; another dataset through its transforms
            seedable = dataset if hasattr(dataset, "set_random_state") else getattr(dataset, "transform", None)
            if seedable is not None and hasattr(seedable, "set_random_state"):
                seedable.set_random_state(seed)
            empty = True
            for batch in loader:
                empty = False
                yield batch
            if empty:
                raise ValueError(f"the {'unlabeled' if stream == 0 else 'labeled'} loader yields no batch.")
            cycle += 1

    def __iter__(self) -> Iterator[dict]:
        unlabeled, labeled = self._cycle(self.unlabeled, 0), self._cycle(self.labeled, 1)
        for _ in range(self.epoch_length):
            yield {"unlabeled": next(unlabeled), "labeled": next(labeled)}
