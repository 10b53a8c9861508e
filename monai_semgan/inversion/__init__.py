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
"""Inversion: embed images into the generator's W+ space (encoder start, batched test-time
optimization)."""

from __future__ import annotations

from monai_semgan.inversion.latent_inverter import (
    InversionResult,
    LatentInverter,
    inversion_learning_rate,
    noise_regularization,
)
from monai_semgan.inversion.perceptual import PERCEPTUAL_KINDS, LPIPSDistance, SSIMDistance, make_perceptual

__all__ = [
    "PERCEPTUAL_KINDS",
    "InversionResult",
    "LPIPSDistance",
    "LatentInverter",
    "SSIMDistance",
    "inversion_learning_rate",
    "make_perceptual",
    "noise_regularization",
]
