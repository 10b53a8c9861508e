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
"""3-D volumes to the 2-D axial slices the generator learns from.

Volumes arrive channel-first ``[1, H, W, D]`` in RAS (``Orientationd("RAS")``), so the last axis is the axial one,
already resized in-plane to the generator's resolution. Training samples slices at random: labeled volumes favour
slices that contain the organ, unlabeled volumes skip slices that are nearly all air. Evaluation iterates every slice
in order; :func:`stack_slices` puts 2-D results back into a volume.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

__all__ = ["AxialSliceStatsd", "RandAxialSliced", "axial_slices", "body_slice_mask", "stack_slices"]

BODY_KEY = "slice_has_body"
ORGAN_KEY = "slice_has_organ"


def body_slice_mask(image: torch.Tensor, air_level: float = -0.9, min_body_fraction: float = 0.05) -> np.ndarray:
    """Which axial slices hold enough body: the fraction of pixels brighter than ``air_level`` per slice.

    Args:
        image: ``[C, H, W, D]`` normalized to [-1, 1] (air at -1).
        air_level: intensity above which a pixel counts as body.
        min_body_fraction: slices with a smaller body fraction are skipped.

    Returns:
        boolean ``[D]``; all True when no slice qualifies (better some slice than none).
    """
    fraction = (torch.as_tensor(image) > air_level).float().mean(dim=(0, 1, 2)).cpu().numpy()
    mask = fraction >= min_body_fraction
    return mask if mask.any() else np.ones_like(mask)


def axial_slices(volume: torch.Tensor) -> list[torch.Tensor]:
    """Split ``[C, H, W, D]`` into ``D`` plain tensors ``[C, H, W]`` (deterministic, in order)."""
    volume = volume.as_tensor() if hasattr(volume, "as_tensor") else torch.as_tensor(volume)
    return [volume[..., i] for i in range(volume.shape[-1])]


def stack_slices(slices: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`axial_slices`: ``D`` tensors ``[C, H, W]`` to ``[C, H, W, D]``."""
    return torch.stack(list(slices), dim=-1)


class AxialSliceStatsd(MapTransform):
    """Record which axial slices hold body and which hold organ, so that cached volumes are not rescanned per draw.

    Adds ``slice_has_body`` (see :func:`body_slice_mask`) and, when the label is present, ``slice_has_organ`` (any
    foreground), both boolean ``[D]`` arrays read by :class:`RandAxialSliced`.

    Args:
        image_key: normalized image key.
        label_key: label key (may be missing).
        air_level: see :func:`body_slice_mask`.
        min_body_fraction: see :func:`body_slice_mask`.
    """

    def __init__(
        self,
        image_key: Hashable = "image",
        label_key: Hashable | None = "label",
        air_level: float = -0.9,
        min_body_fraction: float = 0.05,
    ) -> None:
        super().__init__([image_key], allow_missing_keys=True)
        self.image_key, self.label_key = image_key, label_key
        self.air_level, self.min_body_fraction = air_level, min_body_fraction

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        d[BODY_KEY] = body_slice_mask(d[self.image_key], self.air_level, self.min_body_fraction)
        if self.label_key is not None and self.label_key in d:
            d[ORGAN_KEY] = (torch.as_tensor(d[self.label_key]) > 0).flatten(0, 2).any(dim=0).cpu().numpy()
        return d


class RandAxialSliced(Randomizable, MapTransform):
    """Draw ``num_samples`` random axial slices from a volume; returns a list of 2-D samples.

    Labeled volumes (``label_key`` present) give a slice containing foreground with probability ``fg_ratio``, else any
    body slice. Unlabeled volumes give body slices (see :func:`body_slice_mask`) uniformly. Uses the statistics of
    :class:`AxialSliceStatsd` when an earlier (cached) transform computed them.

    Args:
        keys: keys sliced at the same index (image and label).
        image_key: key used to find body slices.
        label_key: key whose foreground (> 0) defines organ slices; missing in unlabeled data.
        num_samples: slices drawn per call.
        fg_ratio: probability of an organ slice for labeled volumes.
        air_level: see :func:`body_slice_mask`.
        min_body_fraction: see :func:`body_slice_mask`.
        allow_missing_keys: skip missing keys (the label of unlabeled data).

    Raises:
        ValueError: on a ``fg_ratio`` outside [0, 1] or ``num_samples`` < 1, or a volume that is not ``[C, H, W, D]``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: Hashable = "image",
        label_key: Hashable | None = "label",
        num_samples: int = 1,
        fg_ratio: float = 0.75,
        air_level: float = -0.9,
        min_body_fraction: float = 0.05,
        allow_missing_keys: bool = True,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= fg_ratio <= 1.0:
            raise ValueError(f"fg_ratio must lie in [0, 1], got {fg_ratio}.")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        self.image_key = image_key
        self.label_key = label_key
        self.num_samples = num_samples
        self.fg_ratio = fg_ratio
        self.air_level = air_level
        self.min_body_fraction = min_body_fraction
        self._indices: list[int] = []

    def randomize(self, body: np.ndarray, organ: np.ndarray | None = None) -> None:  # type: ignore[override]
        body_idx = np.flatnonzero(body)
        organ_idx = np.flatnonzero(organ) if organ is not None else np.zeros(0, dtype=np.int64)
        picks = []
        for _ in range(self.num_samples):
            if organ_idx.size and self.R.rand() < self.fg_ratio:
                picks.append(int(self.R.choice(organ_idx)))
            else:
                picks.append(int(self.R.choice(body_idx)))
        self._indices = picks

    def __call__(self, data: Mapping) -> list[dict]:
        d = dict(data)
        image = d[self.image_key]
        if image.ndim != 4:
            raise ValueError(f"expected [C, H, W, D] volumes, got shape {tuple(image.shape)}.")
        if BODY_KEY not in d:
            d = AxialSliceStatsd(self.image_key, self.label_key, self.air_level, self.min_body_fraction)(d)
        self.randomize(d[BODY_KEY], d.get(ORGAN_KEY))
        samples = []
        for index in self._indices:
            sample = {k: v for k, v in d.items() if k not in self.keys and k not in (BODY_KEY, ORGAN_KEY)}
            for key in self.key_iterator(d):
                volume = d[key]
                volume = volume.as_tensor() if hasattr(volume, "as_tensor") else torch.as_tensor(volume)
                sample[key] = volume[..., index].clone()
            sample["slice_index"] = index
            samples.append(sample)
        return samples
