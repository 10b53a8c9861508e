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
"""Intensity normalization to the generator's [-1, 1]: a CT window in Hounsfield units, MRI robust percentiles.

Both are MONAI's scaling transforms with this project's defaults and names a reader of a bundle understands.
"""

from __future__ import annotations

from monai.config import KeysCollection
from monai.transforms import ScaleIntensityRanged, ScaleIntensityRangePercentilesd

__all__ = ["LIVER_WINDOW", "CTWindowd", "MRIPercentileNormalized"]

# abdominal soft-tissue window used for the liver: level 50 HU, width 400 HU, i.e. [-150, 250] HU
LIVER_WINDOW = (50.0, 400.0)


class CTWindowd(ScaleIntensityRanged):
    """Map the CT window ``[level - width / 2, level + width / 2]`` (HU) linearly to [-1, 1], clipping outside.

    Args:
        keys: keys of the CT images.
        level: window centre in HU (default 50, the abdominal soft-tissue window that contains the liver).
        width: window width in HU (default 400).
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: when ``width`` is not positive.
    """

    def __init__(
        self,
        keys: KeysCollection,
        level: float = LIVER_WINDOW[0],
        width: float = LIVER_WINDOW[1],
        allow_missing_keys: bool = False,
    ) -> None:
        if width <= 0:
            raise ValueError(f"CT window width must be positive, got {width}.")
        super().__init__(
            keys,
            a_min=level - width / 2,
            a_max=level + width / 2,
            b_min=-1.0,
            b_max=1.0,
            clip=True,
            allow_missing_keys=allow_missing_keys,
        )
        self.level, self.width = level, width


class MRIPercentileNormalized(ScaleIntensityRangePercentilesd):
    """Map the ``[lower, upper]`` intensity percentiles of each MRI volume linearly to [-1, 1], clipping outside.

    MRI has no absolute units, so every volume is normalized by its own robust range.

    Args:
        keys: keys of the MR images.
        lower: lower percentile (default 0.5).
        upper: upper percentile (default 99.5).
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: unless ``0 <= lower < upper <= 100``.
    """

    def __init__(
        self, keys: KeysCollection, lower: float = 0.5, upper: float = 99.5, allow_missing_keys: bool = False
    ) -> None:
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}.")
        super().__init__(
            keys, lower=lower, upper=upper, b_min=-1.0, b_max=1.0, clip=True, allow_missing_keys=allow_missing_keys
        )
