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
"""Evaluate: what lies behind a Dice score and how to report it.

- :mod:`~monai_semgan.evaluation.dice_table`: per-case Dice rows summarized per configuration, CSV files, markdown
  tables and bar plots per method;
- :mod:`~monai_semgan.evaluation.area_profile`: the organ's area in every axial slice, and the share of a prediction
  outside the reference's slices;
- :mod:`~monai_semgan.evaluation.mask_comparison`: volume ratio and left-right offset of a prediction;
- :mod:`~monai_semgan.evaluation.position_prior`: the labeled volumes' mean organ mask in every slice, scored like a
  method: the floor a method that reads the image must beat.

Per-case Dice and HD95 themselves come from :mod:`monai_semgan.segmentation` (``case_scores``, ``write_dice_csv``,
``DiceReport``). Plots need matplotlib (optional: ``pip install monai-semgan[benchmarks]``), imported only when one is
drawn.
"""

from __future__ import annotations

from monai_semgan.evaluation.area_profile import (
    METHOD_STYLE,
    area_profile,
    axial_axis,
    axial_profiles,
    in_plane_voxel_cm2,
    outside_share,
    plot_area_profiles,
    share_outside_organ_slices,
    voxel_profile,
)
from monai_semgan.evaluation.dice_table import (
    METHODS,
    dice_markdown,
    evaluated_methods,
    merge_history,
    plot_dice_bars,
    read_case_dice,
    summarize,
    write_csv,
)
from monai_semgan.evaluation.mask_comparison import load_masks, volume_ratio_and_offset
from monai_semgan.evaluation.position_prior import (
    PRIOR_THRESHOLDS,
    fit_position_prior,
    prior_logits,
    segment_with_prior,
    select_prior_threshold,
)

__all__ = [
    "METHODS",
    "METHOD_STYLE",
    "PRIOR_THRESHOLDS",
    "area_profile",
    "axial_axis",
    "axial_profiles",
    "dice_markdown",
    "evaluated_methods",
    "fit_position_prior",
    "in_plane_voxel_cm2",
    "load_masks",
    "merge_history",
    "outside_share",
    "plot_area_profiles",
    "plot_dice_bars",
    "prior_logits",
    "read_case_dice",
    "segment_with_prior",
    "select_prior_threshold",
    "share_outside_organ_slices",
    "summarize",
    "volume_ratio_and_offset",
    "voxel_profile",
    "write_csv",
]
