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
"""Segment: SemanticGAN as a segmentation network, and what turns volumes into slices and masks back into volumes."""

from __future__ import annotations

from monai_semgan.segmentation.dice_report import DiceReport, case_name, case_scores, write_dice_csv
from monai_semgan.segmentation.processing import (
    MASK_DESCRIPTION,
    OUTPUT_POSTFIXES,
    AtomicNibabelWriter,
    check_outputs,
    check_writable_folder,
    is_project_output,
    labeled_volumes,
    list_volumes,
    segmentation_postprocessing,
)
from monai_semgan.segmentation.segmenter import SemanticSegmenter

__all__ = [
    "MASK_DESCRIPTION",
    "OUTPUT_POSTFIXES",
    "AtomicNibabelWriter",
    "DiceReport",
    "SemanticSegmenter",
    "case_name",
    "case_scores",
    "check_outputs",
    "check_writable_folder",
    "is_project_output",
    "labeled_volumes",
    "list_volumes",
    "segmentation_postprocessing",
    "write_dice_csv",
]
