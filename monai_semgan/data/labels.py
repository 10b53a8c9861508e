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
"""Which label values mean the structure: one vocabulary (``label_values``) for every config and the label app.

Liver is 1 in CHAOS, 6 in BTCV, 5 in TotalSegmentator, and LiTS marks tumour (2) inside the liver: a specification
says which source values become which model class, so nothing is assumed or guessed from the data set's name.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from monai_semgan.data.loading import source_filename

__all__ = ["LABEL_MAPS", "LabelValues", "RemapLabelsd", "parse_label_values"]

# the data sets this project knows: source value -> model class; every other value is background
LABEL_MAPS: dict[str, dict[int, int]] = {
    "chaos": {1: 1},  # CHAOS (and the phantoms): 1 liver, 2/3 kidneys, 4 spleen
    "lits": {1: 1, 2: 1},  # LiTS: tumour counted as liver
    "btcv": {6: 1},  # BTCV / Synapse multi-atlas abdomen: 6 liver of 13 organs
    "totalseg": {5: 1},  # TotalSegmentator "total" and "total_mr": 5 liver
}

LabelValues = Union[int, str, Sequence[int], Mapping[Any, int]]


def parse_label_values(spec: LabelValues) -> dict[int, int]:
    """The source value -> class mapping a ``label_values`` setting means.

    Args:
        spec: a value (``6``: voxels of value 6 are the structure), a list (``[1, 2]``: any of them), a mapping
            (``{"6": 1}``: value -> class, for multi-class models), a named map (:data:`LABEL_MAPS`: ``"chaos"``,
            ``"lits"``, ``"btcv"``, ``"totalseg"``), or any of these written as a string (``"6"``, ``"[1, 2]"``,
            ``"1,2"``, ``'{"6": 1}'``), as a command line passes them.

    Returns:
        ``{source value: class}``; values not listed are background (0).

    Raises:
        ValueError: on an unknown name, a non-integer value, or an empty specification.
    """
    original = spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in LABEL_MAPS:
            return dict(LABEL_MAPS[text.lower()])
        try:
            spec = json.loads(text)
        except ValueError:
            try:
                spec = ast.literal_eval(text)  # "1, 2" is a tuple
            except (ValueError, SyntaxError):
                raise ValueError(
                    f"label_values {original!r}: expected a value (6), a list ([1, 2]), a mapping ({{'6': 1}}) or one "
                    f"of {sorted(LABEL_MAPS)}."
                ) from None
        if isinstance(spec, str):  # a JSON string such as '"btcv"'
            return parse_label_values(spec)
    try:
        if isinstance(spec, Mapping):
            mapping = {_integer(k): _integer(v) for k, v in spec.items()}
        elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            mapping = {int(spec): 1}
        elif isinstance(spec, (Sequence, np.ndarray)):
            mapping = {_integer(v): 1 for v in spec}
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"label_values {original!r}: expected integer values: a value (6), a list ([1, 2]), a mapping "
            f"({{'6': 1}}) or one of {sorted(LABEL_MAPS)}."
        ) from None
    if not mapping:
        raise ValueError(f"label_values {original!r} names no label value.")
    return mapping


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
    number = float(value)
    if not number.is_integer():
        raise ValueError
    return int(number)


class RemapLabelsd(MapTransform):
    """Map label values through a dictionary; values absent from it are an error unless ``others`` is given.

    Args:
        keys: label keys.
        mapping: which values are which class, in any form :func:`parse_label_values` takes (``6``, ``[1, 2]``,
            ``{5: 1}``, ``"btcv"``).
        others: class for values not in ``mapping`` (0: every other organ is background), or ``None`` to raise on
            them.
        num_classes: classes of the model (including background): targets must lie in ``[0, num_classes)``.
        allow_missing_keys: skip missing keys.

    Raises:
        ValueError: on a specification :func:`parse_label_values` refuses, a target outside ``[0, num_classes)``,
            non-integer label values, or values outside the mapping when ``others`` is ``None`` (the message names
            the file and the values).
    """

    def __init__(
        self,
        keys: KeysCollection,
        mapping: LabelValues,
        others: int | None = 0,
        num_classes: int = 2,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mapping = parse_label_values(mapping)
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
