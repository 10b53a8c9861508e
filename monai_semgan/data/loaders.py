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
"""From case lists to the labeled and unlabeled slice loaders the trainer draws from.

Each volume goes once through the volume pipeline that inference uses too
(:func:`~monai_semgan.data.volume_transforms`) and is cached by MONAI's ``CacheDataset``; every epoch then draws
random axial slices (organ-rich for labeled volumes, body slices for unlabeled ones) and flips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import Compose, EnsureTyped, RandAffined, RandFlipd
from torch.utils.data.distributed import DistributedSampler

from monai_semgan.data.intensity import LIVER_WINDOW
from monai_semgan.data.labels import LabelValues
from monai_semgan.data.loading import unwrap_transform_error
from monai_semgan.data.slices import AxialSliceStatsd, RandAxialSliced
from monai_semgan.data.volume_pipeline import volume_transforms

__all__ = ["SliceSampleDataset", "make_slice_dataset", "make_slice_loader"]


class SliceSampleDataset(Dataset):
    """One random 2-D slice per item, drawn from cached volumes in turn: a batch of B items is B slices.

    Args:
        volumes: a ``CacheDataset`` whose transforms end with :class:`RandAxialSliced` (``num_samples=1``).
        slices_per_volume: items per volume per epoch (the epoch length is ``len(volumes) * slices_per_volume``).
    """

    def __init__(self, volumes: CacheDataset, slices_per_volume: int = 8) -> None:
        if slices_per_volume < 1:
            raise ValueError(f"slices_per_volume must be >= 1, got {slices_per_volume}.")
        self.volumes = volumes
        self.slices_per_volume = slices_per_volume

    def __len__(self) -> int:
        return len(self.volumes) * self.slices_per_volume

    def __getitem__(self, index: int) -> dict:
        item = self.volumes[index % len(self.volumes)]
        return item[0] if isinstance(item, list) else item

    def set_random_state(self, seed: int) -> SliceSampleDataset:
        """Seed the random transforms (which slice is drawn, flips, affine and intensity augmentation), as MONAI's
        ``Randomizable`` does; returns the dataset."""
        self.volumes.transform.set_random_state(seed)
        return self


def make_slice_dataset(
    cases: Sequence[Mapping[str, str]],
    modality: str,
    resolution: int,
    labeled: bool,
    slices_per_volume: int = 8,
    fg_ratio: float = 0.75,
    flip_prob: float = 0.0,
    affine_prob: float = 0.0,
    label_values: LabelValues = 1,
    num_classes: int = 2,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    cache_rate: float = 1.0,
    num_workers: int = 0,
    intensity_augmentation: Callable | None = None,
) -> SliceSampleDataset:
    """A dataset of random 2-D slices of cached volumes, ``slices_per_volume`` per volume and epoch.

    Args:
        cases: data dicts (``image``, optional ``label``).
        modality: ``"ct"`` or ``"mri"``.
        resolution: generator resolution.
        labeled: use labels (organ-rich sampling, label key kept); ``False`` drops any label.
        slices_per_volume: slices drawn from each volume per epoch.
        fg_ratio: probability of an organ slice for labeled volumes.
        flip_prob: probability of a left-right flip of each slice (image and label together). 0 (default) keeps
            laterality: the liver is on the patient's right in every real scan, and a model trained with flips
            learns to accept a liver on the left.
        affine_prob: probability of a random in-plane affine transform of each slice (rotation up to 15 degrees,
            scaling by up to 10 %, shifts up to 1/16 of the width; image and label together). 0 for the GAN, which
            must learn the real anatomy's statistics; the supervised U-Net baseline uses it.
        label_values: which label values are the structure (see :func:`~monai_semgan.data.parse_label_values`).
        num_classes: see :func:`volume_transforms`.
        ct_window: see :func:`volume_transforms`.
        mri_percentiles: see :func:`volume_transforms`.
        cache_rate: fraction of volumes cached in memory.
        num_workers: workers that fill the cache.
        intensity_augmentation: a random dictionary transform applied to each sampled slice after the flips and
            affine transforms, e.g. ``RandGINd("image")`` (:class:`~monai_semgan.data.RandGINd`) for the
            domain-generalization baseline; ``None`` (default) for none. Seeded with the other random transforms
            by :meth:`SliceSampleDataset.set_random_state` when it is MONAI ``Randomizable``.

    Returns:
        a :class:`SliceSampleDataset` over a ``CacheDataset`` of the volumes.

    Raises:
        ValueError: when ``cases`` is empty, or a labeled set holds a case without a label.
    """
    if not cases:
        raise ValueError(f"no {'labeled' if labeled else 'unlabeled'} cases given.")
    if labeled:
        missing = [c["image"] for c in cases if not c.get("label")]
        if missing:
            raise ValueError(f"labeled cases without a label: {missing[:5]}.")
        keys: tuple[str, ...] = ("image", "label")
        data = [dict(c) for c in cases]
    else:
        keys = ("image",)
        data = [{k: v for k, v in c.items() if k != "label"} for c in cases]
    transforms = volume_transforms(
        modality,
        resolution,
        label_key="label" if labeled else None,
        label_values=label_values,
        num_classes=num_classes,
        ct_window=ct_window,
        mri_percentiles=mri_percentiles,
    )
    # plain tensors in the cache: training never inverts, and MetaTensor ops would slow the networks
    transforms.append(EnsureTyped(keys, track_meta=False))
    transforms += [
        AxialSliceStatsd("image", "label" if labeled else None),
        RandAxialSliced(keys, num_samples=1, fg_ratio=fg_ratio),
        RandFlipd(keys, prob=flip_prob, spatial_axis=0),
    ]
    if affine_prob > 0:
        transforms.append(
            RandAffined(
                keys,
                prob=affine_prob,
                rotate_range=np.deg2rad(15.0),
                scale_range=0.1,
                translate_range=resolution / 16,
                mode=("bilinear", "nearest")[: len(keys)],
                padding_mode=("border", "zeros")[: len(keys)],
            )
        )
    if intensity_augmentation is not None:
        transforms.append(intensity_augmentation)
    transforms.append(EnsureTyped(keys, track_meta=False))
    # no random transform writes into the cached volume (slices are copied out), so the cache need not be copied
    try:
        volumes = CacheDataset(
            data, Compose(transforms), cache_rate=cache_rate, num_workers=num_workers, progress=False, copy_cache=False
        )
    except RuntimeError as err:  # report the cause (file and problem), not MONAI's "applying transform" wrapper
        raise unwrap_transform_error(err) from err
    return SliceSampleDataset(volumes, slices_per_volume)


def make_slice_loader(
    dataset: SliceSampleDataset, batch_size: int, num_workers: int = 0, seed: int = 0, drop_last: bool = True
) -> DataLoader:
    """Shuffling loader of 2-D slices; batches are ``{"image": [B, 1, R, R], "label": [B, 1, R, R], ...}``.

    Args:
        dataset: from :func:`make_slice_dataset`.
        batch_size: slices per batch.
        num_workers: loader worker processes.
        seed: seed of the shuffling and of the random transforms (for reproducible CPU runs).
        drop_last: drop an incomplete last batch (keeps batch statistics such as minibatch stddev stable), unless
            that would leave no batch at all.

    Under ``torch.distributed`` each rank gets a ``DistributedSampler`` share of the slices.

    Returns:
        a MONAI ``DataLoader``.
    """
    dataset.set_random_state(seed)
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # each rank draws its own share of the slices; PairedSliceLoader sets the sampler's epoch
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last and len(dataset) // (sampler.num_replicas if sampler else 1) >= batch_size,
    )
