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
"""A ``prepare_batch`` for MONAI's ``SupervisedTrainer`` that changes each image's contrast and leaves its label alone.

The supervised U-Net baseline gets the same photometric augmentation as SemanticGAN's encoder
(``train_encoder.json`` ``input_augment``): the same operations with the same ranges, drawn per slice on the device
after the batch is collated, so a comparison of the two differs in the method, not in what contrasts each saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.engines.utils import PrepareBatch, default_prepare_batch

from monai_semgan.engines.diff_augment import DifferentiableAugment

__all__ = ["PhotometricPrepareBatch"]


class PhotometricPrepareBatch(PrepareBatch):
    """MONAI's default batch preparation, then a random photometric change of the images (labels untouched).

    Args:
        policy: comma-separated photometric operations of :class:`~monai_semgan.engines.DifferentiableAugment`
            (``intensity``, ``gamma``), or one already built; empty: the default preparation alone.

    Raises:
        ValueError: on an unknown operation, or one that moves pixels (``translation``, ``cutout``): the label would
            no longer match the image.
    """

    def __init__(self, policy: str | Sequence[str] | DifferentiableAugment = ""):
        self.augment = DifferentiableAugment.photometric(policy, name="input_augment")

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Move ``image`` and ``label`` of ``batchdata`` to ``device`` and augment the image.

        Returns:
            the augmented image and the unchanged label (``None`` when the batch has none).
        """
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if self.augment:
            with torch.no_grad():  # augmentation of the input is not part of what the network learns
                image = self.augment(image)
        return image, label
