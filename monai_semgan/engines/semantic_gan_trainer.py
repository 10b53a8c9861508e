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
"""The semi-supervised SemanticGAN training loop as an Ignite engine built on ``monai.engines.Trainer``.

Per iteration, with a batch of unlabeled images and a batch of labeled image-mask pairs:

1. image discriminator: non-saturating logistic loss, unlabeled real images vs generated images; lazy R1;
2. joint discriminator: hinge loss, real (image, mask) pairs vs generated (image, label) pairs; lazy R1 on the pair;
3. generator: logistic loss against the image discriminator, hinge loss against the joint discriminator on
   (detached image, label) so that the joint discriminator trains the trunk only through the label output, plus
   feature matching (weight 2); lazy path-length regularization on the image output;
4. exponential moving average of the generator.

There is no supervised loss: the few labeled pairs act only through the joint discriminator. MONAI's
``IterationEvents`` fire in order, so MONAI and Ignite handlers (stats, TensorBoard, checkpoints, metrics) attach as
to any MONAI trainer; ``engine.state.output`` is a dict of float losses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.engines.utils import IterationEvents

from monai_semgan.engines.diff_augment import DifferentiableAugment
from monai_semgan.engines.paired_loader import PairedSliceLoader
from monai_semgan.engines.paired_trainer import NonFiniteLossError, PairedTrainer, plain_tensor, unwrap_ddp
from monai_semgan.engines.precision import needs_grad_scaler
from monai_semgan.losses import (
    PathLengthPenalty,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    logistic_discriminator_loss,
    logistic_generator_loss,
    r1_penalty,
)

__all__ = ["NonFiniteLossError", "SemanticGanTrainer", "lazy_adam", "masks_to_signed_onehot"]


def masks_to_signed_onehot(mask: torch.Tensor, label_channels: int) -> torch.Tensor:
    """Integer masks ``[N, 1, H, W]`` to the generator's label space: one channel in {-1, 1} for binary masks
    (``label_channels == 1``), else one-hot over ``label_channels`` classes scaled to [-1, 1].

    Args:
        mask: class indices.
        label_channels: the generator's label channels.

    Returns:
        ``[N, label_channels, H, W]`` float tensor.
    """
    mask = mask.long().squeeze(1)
    if label_channels == 1:
        return (mask > 0).float().unsqueeze(1) * 2 - 1
    return F.one_hot(mask.clamp(0, label_channels - 1), label_channels).permute(0, 3, 1, 2).float() * 2 - 1


def lazy_adam(
    parameters: Iterable[torch.Tensor],
    lr: float = 0.002,
    beta2: float = 0.99,
    interval: int | None = None,
    implementation: str | None = None,
) -> torch.optim.Adam:
    """Adam as StyleGAN2 sets it up for lazy regularization every ``interval`` steps: lr and beta2 scaled by
    ``interval / (interval + 1)``, beta1 = 0.

    Args:
        parameters: parameters to optimize.
        lr: base learning rate.
        beta2: base beta2.
        interval: regularization interval (``None`` or 0: no scaling).
        implementation: ``None`` (PyTorch's default for the device), ``"foreach"`` or ``"fused"``.

    Returns:
        the optimizer.

    Raises:
        ValueError: on an unknown ``implementation``.
    """
    if implementation not in (None, "foreach", "fused"):
        raise ValueError(f"implementation must be None, 'foreach' or 'fused', got {implementation!r}.")
    ratio = interval / (interval + 1) if interval else 1.0
    flags = {implementation: True} if implementation else {}
    return torch.optim.Adam(parameters, lr=lr * ratio, betas=(0.0, beta2**ratio), eps=1e-8, **flags)


class SemanticGanTrainer(PairedTrainer):
    """Semi-supervised SemanticGAN trainer.

    Args:
        device: training device.
        max_epochs: epochs; an epoch is ``data_loader``'s ``epoch_length`` iterations.
        data_loader: a :class:`PairedSliceLoader` (batches ``{"unlabeled": ..., "labeled": ...}``).
        generator: :class:`~monai_semgan.networks.SemanticGenerator` (optionally wrapped in DDP).
        image_discriminator: :class:`~monai_semgan.networks.ImageDiscriminator` (optionally DDP).
        joint_discriminator: :class:`~monai_semgan.networks.JointDiscriminator` (optionally DDP).
        g_optimizer: generator optimizer (see :func:`lazy_adam`).
        d_image_optimizer: image discriminator optimizer.
        d_joint_optimizer: joint discriminator optimizer.
        generator_ema: EMA copy of the generator; made from ``generator`` when ``None``.
        image_key: key of images in both batches.
        label_key: key of masks in the labeled batch.
        mixing_prob: style mixing probability.
        r1_gamma: R1 weight of the image discriminator (applied as ``gamma / 2 * ||grad||^2``), and of the joint one
            unless ``joint_r1_gamma`` is given.
        joint_r1_gamma: R1 weight of the joint discriminator; ``None``: ``r1_gamma`` (the paper); 0 skips the penalty
            (the CPU bundle config's choice; why is on the results page).
        r1_interval: iterations between R1 steps (the penalty is scaled by it); 0 disables R1.
        pl_weight: path-length weight.
        pl_interval: iterations between path-length steps (scaled by it); 0 disables it.
        pl_batch_shrink: the path-length batch is the batch divided by this.
        pl_decay: decay of the path-length running mean.
        feature_matching_weight: weight of the joint discriminator's feature matching loss.
        joint_adv_weight: weight of the generator's hinge loss against the joint discriminator.
        ema_half_life_images: half-life of the generator EMA in images (10k in the paper).
        ema_rampup: if set, the half-life ramps up as ``min(half_life, images_seen * ema_rampup)`` (helps short runs).
        diff_augment: differentiable augmentation of every discriminator input, real and generated, in all three
            steps (see :class:`~monai_semgan.engines.DifferentiableAugment`): a policy such as
            ``"intensity,translation,cutout"``, or ``""`` for none (the paper).
        reuse_fakes: the two discriminator steps score the generator step's images, detached, instead of drawing
            their own: one generator forward per iteration instead of three (two without gradient), as PyTorch's DCGAN
            example does. The generator is the same network in all three steps (it only changes in step 3), so
            the discriminators see the same distribution; what changes is that all three steps see the same samples.
            ``False``: the paper's (StyleGAN2's) fresh latents for every step.
        amp: autocast precision: ``"auto"`` (bf16 on a device with native bf16, the CPU included), ``"bf16"``,
            ``"fp16"`` (CUDA, with a gradient scaler) or ``"off"``. The regularizers' double-backward passes (R1,
            path length), the mapping network, the style modulation and demodulation and the losses stay float32.
        handlers: Ignite / MONAI handlers to attach.
        non_blocking: non-blocking host-to-device copies.

    Raises:
        ValueError: when ``data_loader`` is not a :class:`PairedSliceLoader` or an interval is negative.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        data_loader: PairedSliceLoader,
        generator: nn.Module,
        image_discriminator: nn.Module,
        joint_discriminator: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_image_optimizer: torch.optim.Optimizer,
        d_joint_optimizer: torch.optim.Optimizer,
        generator_ema: nn.Module | None = None,
        image_key: str = "image",
        label_key: str = "label",
        mixing_prob: float = 0.9,
        r1_gamma: float = 10.0,
        joint_r1_gamma: float | None = None,
        r1_interval: int = 16,
        pl_weight: float = 2.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        feature_matching_weight: float = 2.0,
        joint_adv_weight: float = 1.0,
        ema_half_life_images: float = 10_000.0,
        ema_rampup: float | None = None,
        diff_augment: str | DifferentiableAugment = "",
        reuse_fakes: bool = False,
        amp: bool | str | None = "auto",
        handlers: Sequence | None = None,
        non_blocking: bool = False,
    ) -> None:
        if min(r1_interval, pl_interval) < 0:
            raise ValueError("regularization intervals must be >= 0.")
        super().__init__(device, max_epochs, data_loader, amp=amp, non_blocking=non_blocking)
        device = self.state.device
        self.generator = generator
        self.image_discriminator = image_discriminator
        self.joint_discriminator = joint_discriminator
        self.g_optimizer = g_optimizer
        self.d_image_optimizer = d_image_optimizer
        self.d_joint_optimizer = d_joint_optimizer
        self.generator_ema = generator_ema if generator_ema is not None else copy.deepcopy(unwrap_ddp(generator)).eval()
        self.generator_ema.requires_grad_(False)
        self.path_length = PathLengthPenalty(pl_decay).to(device)
        self.image_key, self.label_key = image_key, label_key
        self.mixing_prob = mixing_prob
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.joint_r1_gamma = r1_gamma if joint_r1_gamma is None else joint_r1_gamma
        self.pl_weight, self.pl_interval, self.pl_batch_shrink = pl_weight, pl_interval, pl_batch_shrink
        self.feature_matching_weight = feature_matching_weight
        self.joint_adv_weight = joint_adv_weight
        self.ema_half_life_images = ema_half_life_images
        self.ema_rampup = ema_rampup
        if not isinstance(diff_augment, DifferentiableAugment):
            diff_augment = DifferentiableAugment(diff_augment)
        self.augment = diff_augment
        self.reuse_fakes = bool(reuse_fakes)
        # float16 needs loss scaling; bfloat16 does not
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(self.amp_dtype))
        self.images_seen = 0
        if handlers is not None:
            self._register_handlers(handlers)

    @property
    def _g(self) -> nn.Module:
        return unwrap_ddp(self.generator)

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(loss).backward()
        self.grad_scaler.step(optimizer)
        self.grad_scaler.update()

    def _sample_z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self._g.z_dim, device=self.state.device)

    def _iteration(self, engine: SemanticGanTrainer, batchdata: dict[str, Any]) -> dict[str, float]:  # type: ignore[override]
        device = engine.state.device
        kw = {"non_blocking": engine.non_blocking}
        # plain tensors: a MetaTensor routes every op of the networks through __torch_function__ (several times slower)
        real_u = plain_tensor(batchdata["unlabeled"][self.image_key]).to(device, **kw).float()
        real_l = plain_tensor(batchdata["labeled"][self.image_key]).to(device, **kw).float()
        mask_l = plain_tensor(batchdata["labeled"][self.label_key]).to(device, **kw)
        mask_l = masks_to_signed_onehot(mask_l, self._g.label_channels)
        batch = real_u.shape[0]
        iteration = engine.state.iteration  # 1-based in Ignite
        engine.state.batch = batchdata
        out: dict[str, float] = {}
        g, d_img, d_joint = self.generator, self.image_discriminator, self.joint_discriminator
        aug = self.augment  # identity without a policy
        n_labeled = real_l.shape[0]
        shared: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.reuse_fakes:
            # the generator step's forward, done first: its graph waits through the discriminator steps, which see
            # the images detached (the generator's parameters do not change before step 3, so the graph stays valid)
            g.requires_grad_(True)
            with self._autocast():
                shared = g(self._sample_z(max(batch, n_labeled)), mixing_prob=self.mixing_prob)

        def fakes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            """``n`` generated (image, label) pairs for a discriminator step, without gradient."""
            if shared is not None:
                return shared[0][:n].detach(), shared[1][:n].detach()
            with torch.no_grad(), self._autocast():
                return g(self._sample_z(n), mixing_prob=self.mixing_prob)

        # 1. image discriminator
        g.requires_grad_(self.reuse_fakes)
        d_img.requires_grad_(True)
        d_joint.requires_grad_(False)
        fake_img, _ = fakes(batch)
        do_r1 = self.r1_interval > 0 and iteration % self.r1_interval == 0
        real_in = real_u.detach().requires_grad_(do_r1)
        # R1 differentiates the gradient of the real logits: its pass stays float32, where bf16's 8-bit mantissa
        # would round the gradient norm it penalizes (one iteration in r1_interval)
        with self._autocast(enabled=not do_r1):
            real_logits = d_img(aug(real_in))
        with self._autocast():
            loss_d_img = logistic_discriminator_loss(real_logits.float(), d_img(aug(fake_img)).float())
        out["loss_d_image"] = self._check("image discriminator loss", loss_d_img)
        total = loss_d_img
        if do_r1:
            r1 = r1_penalty(real_logits.float(), real_in)
            out["r1_image"] = self._check("image R1 penalty", r1)
            total = total + r1 * (self.r1_gamma / 2 * self.r1_interval)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        self._step(self.d_image_optimizer, total)

        # 2. joint discriminator
        d_img.requires_grad_(False)
        d_joint.requires_grad_(True)
        fake_img_l, fake_lab_l = fakes(n_labeled)
        # a zero weight skips the penalty's double backward altogether
        do_r1_joint = do_r1 and self.joint_r1_gamma > 0
        pair_img = real_l.detach().requires_grad_(do_r1_joint)
        pair_mask = mask_l.detach().requires_grad_(do_r1_joint)
        with self._autocast(enabled=not do_r1_joint):
            real_out = d_joint(*aug(pair_img, pair_mask))
        with self._autocast():
            fake_out = d_joint(*aug(fake_img_l, fake_lab_l))
            loss_d_joint = hinge_discriminator_loss(real_out, fake_out)
        out["loss_d_joint"] = self._check("joint discriminator loss", loss_d_joint)
        total = loss_d_joint
        if do_r1_joint:
            r1j = r1_penalty([[o.float() for o in scale] for scale in real_out], [pair_img, pair_mask])
            out["r1_joint"] = self._check("joint R1 penalty", r1j)
            total = total + r1j * (self.joint_r1_gamma / 2 * self.r1_interval)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        self._step(self.d_joint_optimizer, total)

        # 3. generator; the discriminators are frozen here, so their DDP wrappers (which would wait for gradients to
        # synchronise) are bypassed
        g.requires_grad_(True)
        d_joint.requires_grad_(False)
        d_img, d_joint = unwrap_ddp(d_img), unwrap_ddp(d_joint)
        with self._autocast():
            if shared is None:
                shared = g(self._sample_z(batch), mixing_prob=self.mixing_prob)
            gen_img, gen_lab = shared[0][:batch], shared[1][:batch]
            loss_adv = logistic_generator_loss(d_img(aug(gen_img)).float())
            # the image is detached: the joint discriminator reaches the trunk only through the label branch
            fake_pair = d_joint(*aug(gen_img.detach(), gen_lab))
            with torch.no_grad():
                real_pair = d_joint(*aug(real_l, mask_l))
            loss_joint = hinge_generator_loss(fake_pair)
            loss_fm = feature_matching_loss(real_pair, fake_pair)
        loss_g = loss_adv + self.joint_adv_weight * loss_joint + self.feature_matching_weight * loss_fm
        out["loss_g_image"] = self._check("generator image loss", loss_adv)
        out["loss_g_joint"] = self._check("generator joint loss", loss_joint)
        out["loss_g_feature_matching"] = self._check("feature matching loss", loss_fm)
        out["loss_g"] = self._check("generator loss", loss_g)
        self.g_optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(loss_g).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        self.grad_scaler.step(self.g_optimizer)
        self.grad_scaler.update()

        if self.pl_interval > 0 and iteration % self.pl_interval == 0 and self.pl_weight > 0:
            n = max(batch // self.pl_batch_shrink, 1)
            # the path length is a gradient norm too, differentiated again: float32, like R1 (one iteration in
            # pl_interval)
            with self._autocast(enabled=False):
                pl_img, pl_lab, ws = g(self._sample_z(n), mixing_prob=self.mixing_prob, return_ws=True)
            penalty, length = self.path_length(pl_img.float(), ws)
            out["path_length_penalty"] = self._check("path-length penalty", penalty)
            out["path_length"] = float(length)
            # zero-weighted outputs keep every parameter (the label branch too) in the graph, as DDP expects
            reg = (
                penalty * (self.pl_weight * self.pl_interval)
                + (pl_img[:, :, 0, 0].sum() + pl_lab[:, :, 0, 0].sum()) * 0
            )
            self._step(self.g_optimizer, reg)
        g.requires_grad_(False)

        # 4. EMA of the generator
        self.images_seen += batch * (torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1)
        self.update_ema(batch)
        for name, optimizer in (
            ("g", self.g_optimizer),
            ("d_image", self.d_image_optimizer),
            ("d_joint", self.d_joint_optimizer),
        ):
            out[f"lr_{name}"] = optimizer.param_groups[0]["lr"]
        engine.state.output = out
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return out

    @torch.no_grad()
    def update_ema(self, batch: int) -> None:
        """Move the EMA generator towards the generator by one step of ``batch`` images."""
        half_life = self.ema_half_life_images
        if self.ema_rampup is not None:
            half_life = min(half_life, self.images_seen * self.ema_rampup)
        beta = 0.5 ** (batch / max(half_life, 1e-8))
        for p_ema, p in zip(self.generator_ema.parameters(), self._g.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for b_ema, b in zip(self.generator_ema.buffers(), self._g.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Ignite's state (iteration, epoch) plus what a resumed run needs to continue exactly: images seen, the
        path-length running mean and the random number generators' states."""
        state = dict(super().state_dict())
        state["images_seen"] = self.images_seen
        state["path_length_mean"] = self.path_length.mean_length.detach().cpu().clone()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore what :meth:`state_dict` saved."""
        state = dict(state_dict)
        self.images_seen = int(state.pop("images_seen", 0))
        mean = state.pop("path_length_mean", None)
        if mean is not None:
            self.path_length.mean_length.copy_(mean)
        super().load_state_dict(state)
