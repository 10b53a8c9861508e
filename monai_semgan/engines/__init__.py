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
"""Train: the semi-supervised SemanticGAN engine, the encoder engine, their paired labeled/unlabeled loader, and the
``amp`` precision (bf16 autocast where the device has native bf16)."""

from __future__ import annotations

from monai_semgan.engines.diff_augment import DifferentiableAugment
from monai_semgan.engines.encoder_trainer import EncoderTrainer
from monai_semgan.engines.paired_loader import PairedSliceLoader
from monai_semgan.engines.paired_trainer import PairedTrainer
from monai_semgan.engines.precision import (
    AMP_MODES,
    AutocastModule,
    autocast,
    cpu_has_native_bf16,
    needs_grad_scaler,
    parse_amp,
    resolve_amp,
)
from monai_semgan.engines.semantic_gan_trainer import (
    NonFiniteLossError,
    SemanticGanTrainer,
    lazy_adam,
    masks_to_signed_onehot,
)

__all__ = [
    "AMP_MODES",
    "AutocastModule",
    "DifferentiableAugment",
    "EncoderTrainer",
    "NonFiniteLossError",
    "PairedSliceLoader",
    "PairedTrainer",
    "SemanticGanTrainer",
    "autocast",
    "cpu_has_native_bf16",
    "lazy_adam",
    "masks_to_signed_onehot",
    "needs_grad_scaler",
    "parse_amp",
    "resolve_amp",
]
