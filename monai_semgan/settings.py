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
"""Check a bundle's settings before anything is written: ``--batch_size 0`` is refused before data, a split or an
output folder exist, with one message naming the setting, its value and what it must be.

The bundle configs call :func:`check_settings` in their ``initialize`` step with the settings they use; each setting
name has one rule here, so ``train.json``, ``train_encoder.json``, ``train_unet.json`` (and its ``train_unet_dg.json``
overlay) and ``inference.json`` check the same name the same way. The networks' own constructors check their
architecture (``resolution`` a power of two from 8 to 1024, ...); the configs build them in ``initialize`` too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SETTING_RULES", "check_settings"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _non_negative_int(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _non_negative(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _probability(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _power_of_two(value: Any) -> bool:
    return _is_int(value) and 8 <= value <= 1024 and value & (value - 1) == 0


def _num_labeled(value: Any) -> bool:
    return _is_int(value) and value >= -1


def _ct_window(value: Any) -> bool:
    return isinstance(value, Sequence) and len(value) == 2 and all(map(_is_number, value)) and value[1] > 0


def _percentiles(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(map(_is_number, value))
        and 0 <= value[0] < value[1] <= 100
    )


def _optional_positive_int(value: Any) -> bool:
    return value is None or _positive_int(value)


def _optional_non_negative(value: Any) -> bool:
    return value is None or _non_negative(value)


def _amp(value: Any) -> bool:
    from monai_semgan.engines.precision import parse_amp

    parse_amp(value)  # its ValueError names the setting and the modes
    return True


def _label_values(value: Any) -> bool:
    from monai_semgan.data.labels import parse_label_values  # the data package is heavy; only when checked

    parse_label_values(value)  # its ValueError says what a label_values setting may be
    return True


SETTING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "modality": (lambda v: v in ("ct", "mri"), '"ct" or "mri"'),
    "resolution": (_power_of_two, "a power of two from 8 to 1024"),
    "num_labeled": (_num_labeled, "an integer, -1 for every labeled case"),
    "seed": (_non_negative_int, "a non-negative integer"),
    "iterations": (_positive_int, "a positive integer"),
    "iterations_per_epoch": (_positive_int, "a positive integer"),
    "batch_size": (_positive_int, "a positive integer"),
    "labeled_batch_size": (_positive_int, "a positive integer"),
    "slices_per_volume": (_positive_int, "a positive integer"),
    "slices_per_batch": (_positive_int, "a positive integer"),
    "num_workers": (_non_negative_int, "a non-negative integer"),
    "checkpoints_kept": (_optional_positive_int, "a positive integer, or null to keep every checkpoint"),
    "sample_interval": (_non_negative_int, "a non-negative integer (0: no sample grids)"),
    "fg_ratio": (_probability, "a number from 0 to 1"),
    "flip_prob": (_probability, "a number from 0 to 1"),
    "mixing_prob": (_probability, "a number from 0 to 1"),
    "threshold": (_probability, "a number from 0 to 1"),
    "learning_rate": (_positive, "a positive number"),
    "weight_decay": (_non_negative, "a non-negative number"),
    "r1_gamma": (_non_negative, "a non-negative number"),
    "joint_r1_gamma": (_non_negative, "a non-negative number"),
    "r1_interval": (_positive_int, "a positive integer"),
    "pl_weight": (_non_negative, "a non-negative number"),
    "pl_interval": (_positive_int, "a positive integer"),
    "feature_matching_weight": (_non_negative, "a non-negative number"),
    "ema_half_life_images": (_non_negative, "a non-negative number"),
    "ema_rampup": (_optional_non_negative, "a non-negative number, or null"),
    "mse_weight": (_non_negative, "a non-negative number"),
    "perceptual_weight": (_non_negative, "a non-negative number"),
    "label_weight": (_non_negative, "a non-negative number"),
    "optimize_steps": (_non_negative_int, "a non-negative integer"),
    "mode": (lambda v: v in ("quick", "optimize"), '"quick" or "optimize"'),
    "time_limit_s": (_optional_non_negative, "a non-negative number of seconds, or null"),
    "gin_layers": (_positive_int, "a positive integer"),
    "gin_channels": (_positive_int, "a positive integer"),
    "ipa_prob": (_probability, "a number from 0 to 1"),
    "ct_window": (_ct_window, "[level, width] in HU with a positive width"),
    "mri_percentiles": (_percentiles, "[lower, upper] with 0 <= lower < upper <= 100"),
    "amp": (_amp, '"auto", "bf16", "fp16" (CUDA) or "off"'),
    "label_values": (_label_values, "a label value, a list or mapping of values, or a name such as btcv"),
}
"""Each setting name: (rule, what a valid value is)."""


def check_settings(**settings: Any) -> dict[str, Any]:
    """Refuse a bad setting before anything is written.

    Args:
        settings: setting name -> value, for names of :data:`SETTING_RULES`.

    Returns:
        ``settings``, unchanged.

    Raises:
        ValueError: naming the first setting whose value breaks its rule and what the setting must be.
        KeyError: for a name without a rule (a mistake in the config, not in the user's input).
    """
    for name, value in settings.items():
        if name not in SETTING_RULES:
            raise KeyError(f"no rule for the setting {name!r}; known: {sorted(SETTING_RULES)}.")
        rule, valid = SETTING_RULES[name]
        try:
            ok = rule(value)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"setting {name} = {value!r}: must be {valid} (--{name} on the command line).")
    return settings
