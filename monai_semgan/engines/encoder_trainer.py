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
"""Training of the W+ encoder against the frozen generator, as an Ignite engine built on ``monai.engines.Trainer``.

Per iteration, the encoder embeds a batch of unlabeled images and a batch of labeled pairs; the frozen generator
(constant noise, as at test time) renders them back. Unlabeled: MSE + 10 x perceptual on the image. Labeled: the same
plus Dice + cross-entropy between the generated label logits and the real mask, so that the latent the encoder finds is
one whose label output is right, not only its image. Optionally the encoder sees a photometrically augmented copy of
each image (``input_augment``) while the losses compare with the original: the encoder is then asked to find the same
latent whatever the slice's brightness and contrast, which is what a new patient or another MRI sequence changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.engines.utils import IterationEvents
from monai.losses import DiceCELoss

from monai_semgan.engines.diff_augment import DifferentiableAugment
from monai_semgan.engines.paired_loader import PairedSliceLoader
from monai_semgan.engines.paired_trainer import PairedTrainer, plain_tensor, unwrap_ddp
from monai_semgan.engines.precision import parse_amp

__all__ = ["EncoderTrainer"]


class EncoderTrainer(PairedTrainer):
    """Encoder trainer (generator frozen).

    Args:
        device: training device.
        max_epochs: epochs; an epoch is ``data_loader``'s ``epoch_length`` iterations.
        data_loader: a :class:`PairedSliceLoader`.
        encoder: :class:`~monai_semgan.networks.LatentEncoder` (optionally DDP-wrapped).
        generator: the trained :class:`~monai_semgan.networks.SemanticGenerator` (EMA weights); never updated.
        optimizer: the encoder's optimizer.
        perceptual: a module mapping an image pair to per-sample distances (see
            :func:`~monai_semgan.inversion.make_perceptual`), or ``None``.
        image_key: key of images in both batches.
        label_key: key of masks in the labeled batch.
        mse_weight: weight of the pixel MSE.
        perceptual_weight: weight of the perceptual term (10 in the paper).
        label_weight: weight of Dice + cross-entropy on labeled pairs.
        input_augment: photometric :class:`~monai_semgan.engines.DifferentiableAugment` operations (``intensity``,
            ``gamma``; a policy string or the object) applied to the encoder's input only; the generated image and
            label are compared with the unaugmented slice and mask. Empty: none.
        amp: autocast precision: ``"bf16"``, ``"fp16"`` (CUDA) or ``"off"``; ``"auto"`` means float32 here (a bf16
            encoder segmented worse, see the results page); the losses are computed in float32.
        handlers: Ignite / MONAI handlers to attach.

    Raises:
        ValueError: when ``data_loader`` is not a :class:`PairedSliceLoader`, the encoder does not fit the generator,
            or ``input_augment`` moves pixels (the reconstruction target would no longer match the input).

    Checkpoints include the random generators' states (:class:`PairedTrainer`), so a resumed run continues exactly.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        data_loader: PairedSliceLoader,
        encoder: nn.Module,
        generator: nn.Module,
        optimizer: torch.optim.Optimizer,
        perceptual: nn.Module | None = None,
        image_key: str = "image",
        label_key: str = "label",
        mse_weight: float = 1.0,
        perceptual_weight: float = 10.0,
        label_weight: float = 1.0,
        input_augment: str | DifferentiableAugment = "",
        amp: bool | str | None = "auto",
        handlers: Sequence | None = None,
    ) -> None:
        enc = unwrap_ddp(encoder)
        if (enc.num_ws, enc.w_dim, enc.resolution) != (generator.num_ws, generator.w_dim, generator.resolution):
            raise ValueError("the encoder's resolution and W+ shape must match the generator's.")
        input_augment = DifferentiableAugment.photometric(input_augment, name="input_augment")
        # "auto" trains the encoder in float32: in bf16 it lost 0.08 CHAOS Dice (0.358 -> 0.274) on the same generator
        # (docs/benchmarks.md, "Precision"); an explicit "bf16" is still honoured
        super().__init__(device, max_epochs, data_loader, amp="off" if parse_amp(amp) == "auto" else amp)
        device = self.state.device
        self.encoder = encoder
        self.generator = generator.eval().requires_grad_(False)
        self.optimizer = optimizer
        self.perceptual = perceptual.to(device) if perceptual is not None else None
        self.image_key, self.label_key = image_key, label_key
        self.mse_weight, self.perceptual_weight, self.label_weight = mse_weight, perceptual_weight, label_weight
        self.input_augment = input_augment
        binary = generator.label_channels == 1
        self.label_loss = DiceCELoss(sigmoid=binary, softmax=not binary, to_onehot_y=not binary)
        if handlers is not None:
            self._register_handlers(handlers)

    def _reconstruction(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ws = self.encoder(self.input_augment(images))  # an empty policy returns the images themselves
        fake, logits = self.generator.synthesis(ws, noise_mode="const")
        mse = (fake.float() - images).square().mean()
        perceptual = self.perceptual(fake.float(), images).mean() if self.perceptual is not None else mse.new_zeros(())
        return mse, perceptual, logits.float(), fake

    def _weighted(self, mse: torch.Tensor, perceptual: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.mse_weight * mse + self.perceptual_weight * perceptual + self.label_weight * label

    def _iteration(self, engine: EncoderTrainer, batchdata: dict[str, Any]) -> dict[str, float]:  # type: ignore[override]
        device = engine.state.device
        real_u = plain_tensor(batchdata["unlabeled"][self.image_key]).to(device).float()
        real_l = plain_tensor(batchdata["labeled"][self.image_key]).to(device).float()
        mask_l = plain_tensor(batchdata["labeled"][self.label_key]).to(device).long()
        engine.state.batch = batchdata
        self.encoder.train()
        with self._autocast():
            mse_u, perc_u, _, _ = self._reconstruction(real_u)
            mse_l, perc_l, logits, _ = self._reconstruction(real_l)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        target = (mask_l > 0).float() if self.generator.label_channels == 1 else mask_l
        loss_label = self.label_loss(logits, target)
        loss_mse = (mse_u + mse_l) / 2
        loss_perc = (perc_u + perc_l) / 2
        loss = self._weighted(loss_mse, loss_perc, loss_label)
        out = {
            "loss_mse": self._check("MSE", loss_mse),
            "loss_perceptual": self._check("perceptual loss", loss_perc),
            "loss_label": self._check("label loss", loss_label),
        }
        out["loss"] = self._check("encoder loss", loss)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        self.optimizer.step()
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        engine.state.output = out
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return out
