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

Each volume goes once through the deterministic part (load, check, RAS, intensity to [-1, 1], label remap, pad the
axial plane to a square, resize it to the generator's resolution) and is cached by MONAI's ``CacheDataset``; every
epoch then draws random axial slices (organ-rich for labeled volumes, body slices for unlabeled ones) and flips.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Orientationd,
    RandAffined,
    RandFlipd,
    Resized,
    SpatialPadd,
)
from torch.utils.data.distributed import DistributedSampler

from monai_semgan.data.intensity import LIVER_WINDOW, CTWindowd, MRIPercentileNormalized
from monai_semgan.data.labels import RemapLabelsd
from monai_semgan.data.loading import LoadVolumed, unwrap_transform_error
from monai_semgan.data.slices import AxialSliceStatsd, RandAxialSliced
from monai_semgan.data.validation import CheckVolumed

__all__ = [
    "SliceSampleDataset",
    "SquareAxialPadd",
    "intensity_normalization",
    "make_slice_dataset",
    "make_slice_loader",
    "orient_ras",
    "volume_transforms",
]

MODALITIES = ("ct", "mri")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # explicit: MONAI warns when the default is implied


def orient_ras(keys: KeysCollection, allow_missing_keys: bool = False) -> Orientationd:
    """``Orientationd`` to RAS with the axis labels stated (MONAI warns when they are implied)."""
    return Orientationd(keys, axcodes="RAS", labels=_RAS_LABELS, allow_missing_keys=allow_missing_keys)


def intensity_normalization(
    modality: str,
    key: str,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
) -> CTWindowd | MRIPercentileNormalized:
    """The modality's intensity transform to [-1, 1]: the CT window (HU) or the MRI percentiles.

    Raises:
        ValueError: on an unknown modality.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    if modality == "ct":
        return CTWindowd(key, level=ct_window[0], width=ct_window[1])
    return MRIPercentileNormalized(key, lower=mri_percentiles[0], upper=mri_percentiles[1])


class SquareAxialPadd(SpatialPadd):
    """Pad the two in-plane axes of ``[C, H, W, D]`` volumes to a square (centred), so resizing keeps the aspect.

    Invertible like ``SpatialPadd`` (the pad widths are recorded in the MetaTensor's applied operations).

    Args:
        keys: keys to pad (image and label together).
        value: pad value per key, e.g. ``(-1.0, 0)`` for a normalized image (air) and a label (background).
        allow_missing_keys: skip missing keys.
    """

    def __init__(self, keys: KeysCollection, value: Sequence[float] | float = 0.0, allow_missing_keys=False) -> None:
        super().__init__(keys, spatial_size=(-1, -1, -1), mode="constant", allow_missing_keys=allow_missing_keys)
        keys_tuple = (keys,) if isinstance(keys, str) else tuple(keys)
        self.values = tuple(value) if isinstance(value, Sequence) else (value,) * len(keys_tuple)

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict:
        d = dict(data)
        for key, value in zip(self.keys, self.values):
            if key not in d:
                continue
            size = max(d[key].shape[1], d[key].shape[2])
            self.padder.spatial_size = (size, size, -1)
            d[key] = self.padder(d[key], mode="constant", value=value, lazy=lazy)
        return d


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
        """Seed the random transforms (which slice is drawn, flips, affine transforms), as MONAI's ``Randomizable``
        does; returns the dataset."""
        self.volumes.transform.set_random_state(seed)
        return self


def volume_transforms(
    modality: str,
    resolution: int,
    label_mapping: Mapping[int, int] | str | None = None,
    label_others: int | None = 0,
    num_classes: int = 2,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    keys: Sequence[str] = ("image", "label"),
    track_meta: bool = False,
) -> list:
    """The deterministic, cacheable per-volume transforms.

    Args:
        modality: ``"ct"`` (HU window) or ``"mri"`` (percentiles).
        resolution: in-plane size after resizing (the generator's).
        label_mapping: source label value -> class (see :class:`RemapLabelsd`); ``None`` keeps labels as they are.
        label_others: class for label values not in the mapping (``None``: error).
        num_classes: classes including background.
        ct_window: ``(level, width)`` in HU.
        mri_percentiles: ``(lower, upper)``.
        keys: image key and, optionally, label key; missing labels are allowed.
        track_meta: keep MetaTensors with their applied operations, so ``Invertd`` can map 2-D results back to the
            input's grid (inference); ``False`` gives plain tensors (training, smaller cache).

    Returns:
        a list of MONAI transforms ending with ``[1, resolution, resolution, D]`` float32 image (and uint8 label).

    Raises:
        ValueError: on an unknown modality.
    """
    image_key = keys[0]
    label_keys = tuple(keys[1:])
    intensity = intensity_normalization(modality, image_key, ct_window, mri_percentiles)
    transforms: list = [
        LoadVolumed(keys, allow_missing_keys=True),
        EnsureChannelFirstd(keys, allow_missing_keys=True),
        CheckVolumed(image_key, label_keys=label_keys, allow_missing_keys=True),
        orient_ras(keys, allow_missing_keys=True),
        intensity,
    ]
    if label_keys and label_mapping is not None:
        transforms.append(
            RemapLabelsd(
                label_keys, label_mapping, others=label_others, num_classes=num_classes, allow_missing_keys=True
            )
        )
    transforms += [
        SquareAxialPadd(keys, value=(-1.0,) + (0,) * len(label_keys), allow_missing_keys=True),
        Resized(image_key, spatial_size=(resolution, resolution, -1), mode="area"),
        EnsureTyped(image_key, dtype=torch.float32, track_meta=track_meta),
    ]
    if label_keys:
        transforms += [
            Resized(label_keys, spatial_size=(resolution, resolution, -1), mode="nearest", allow_missing_keys=True),
            EnsureTyped(label_keys, dtype=torch.uint8, track_meta=track_meta, allow_missing_keys=True),
        ]
    return transforms


def make_slice_dataset(
    cases: Sequence[Mapping[str, str]],
    modality: str,
    resolution: int,
    labeled: bool,
    slices_per_volume: int = 8,
    fg_ratio: float = 0.75,
    flip_prob: float = 0.0,
    affine_prob: float = 0.0,
    label_mapping: Mapping[int, int] | str | None = None,
    label_others: int | None = 0,
    num_classes: int = 2,
    ct_window: Sequence[float] = LIVER_WINDOW,
    mri_percentiles: Sequence[float] = (0.5, 99.5),
    cache_rate: float = 1.0,
    num_workers: int = 0,
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
            laterality: the liver is on the patient's right in every real scan, and models trained with flips
            learn to accept a liver on the left (on T1 MRI they then segment the spleen; see
            ``docs/benchmarks.md``).
        affine_prob: probability of a random in-plane affine transform of each slice (rotation up to 15 degrees,
            scaling by up to 10 %, shifts up to 1/16 of the width; image and label together). 0 for the GAN, which
            must learn the real anatomy's statistics; the supervised U-Net baseline uses it.
        label_mapping: see :func:`volume_transforms`.
        label_others: see :func:`volume_transforms`.
        num_classes: see :func:`volume_transforms`.
        ct_window: see :func:`volume_transforms`.
        mri_percentiles: see :func:`volume_transforms`.
        cache_rate: fraction of volumes cached in memory.
        num_workers: workers that fill the cache.

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
        label_mapping,
        label_others,
        num_classes,
        ct_window,
        mri_percentiles,
        keys=keys,
    )
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
    transforms.append(EnsureTyped(keys, track_meta=False))  # plain tensors: MetaTensor ops would slow the networks
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
