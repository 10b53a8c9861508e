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
"""Label remapping from a data set's class values to the model's classes, strict about unknown values.

Liver is 1 in CHAOS, 5 in TotalSegmentator, and LiTS marks tumour (2) inside the liver: a mapping says which source
values become which model class, so nothing is assumed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_semgan.data.loading import source_filename

__all__ = ["LABEL_MAPS", "RemapLabelsd"]

# mappings for the data sets this project knows; values not listed map to background only where `others` allows it
LABEL_MAPS: dict[str, dict[int, int]] = {
    "lits": {0: 0, 1: 1, 2: 1},  # liver, tumour counted as liver
    "chaos": {0: 0, 1: 1, 2: 0, 3: 0, 4: 0},  # liver; kidneys and spleen become background
    "chaos_png": {0: 0, 63: 1, 126: 0, 189: 0, 252: 0},  # CHAOS ground-truth PNGs
    "totalseg": {5: 1},  # liver in TotalSegmentator's "total" and "total_mr" maps; use others=0
}


class RemapLabelsd(MapTransform):
    """Map label values through a dictionary; values absent from it are an error unless ``others`` is given.

    Args:
        keys: label keys.
        mapping: source value -> target class, e.g. ``{5: 1}`` or the name of an entry of :data:`LABEL_MAPS`.
        others: class for values not in ``mapping`` (e.g. 0 for "every other organ is background"), or ``None`` to
            raise on them.
        num_classes: classes of the model (including background): targets must lie in ``[0, num_classes)``.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: on an unknown mapping name, a target outside ``[0, num_classes)``, non-integer label values, or
            values outside the mapping (the message names the file and the values).
    """

    def __init__(
        self,
        keys: KeysCollection,
        mapping: Mapping[int, int] | str,
        others: int | None = None,
        num_classes: int = 2,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if isinstance(mapping, str):
            if mapping not in LABEL_MAPS:
                raise ValueError(f"unknown label mapping {mapping!r}; known: {sorted(LABEL_MAPS)}.")
            mapping = LABEL_MAPS[mapping]
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        targets = set(self.mapping.values()) | ({others} if others is not None else set())
        if any(not 0 <= t < num_classes for t in targets):
            raise ValueError(f"label targets {sorted(targets)} must lie in [0, {num_classes}).")
        self.others = others
        self.num_classes = num_classes

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self._remap(d[key], source_filename(d, key))
        return d

    def _remap(self, label: torch.Tensor | np.ndarray, filename: str) -> torch.Tensor | np.ndarray:
        array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if not np.isfinite(array).all():
            raise ValueError(f"{filename}: label holds NaN or infinite values.")
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise ValueError(f"{filename}: label holds non-integer values (e.g. {array[rounded != array].flat[0]}).")
        values = np.unique(rounded).astype(np.int64)
        unknown = [int(v) for v in values if int(v) not in self.mapping]
        if unknown and self.others is None:
            raise ValueError(
                f"{filename}: label values {unknown[:10]} are not in the mapping {self.mapping} (pass others=0 to "
                "map them to background)."
            )
        lut_keys = np.array(sorted(set(values.tolist()) | set(self.mapping)), dtype=np.int64)
        lut_values = np.array([self.mapping.get(int(k), self.others or 0) for k in lut_keys], dtype=np.uint8)
        out = lut_values[np.searchsorted(lut_keys, rounded.astype(np.int64))]
        if isinstance(label, torch.Tensor):
            result = torch.as_tensor(out, device=label.device)
            if isinstance(label, MetaTensor):
                result = MetaTensor(result, meta=label.meta, applied_operations=label.applied_operations)
            return result
        return out
