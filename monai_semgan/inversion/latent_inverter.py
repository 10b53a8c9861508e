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
"""Embed images into the generator's W+ space: encoder initialization, then batched test-time optimization.

Every slice of a batch has its own W+ latent and its own noise maps, and the objective is a sum of per-slice losses,
so Adam (an element-wise optimizer) moves each slice exactly as if it were optimized alone: a volume's slices are
inverted together, in chunks that bound memory, with the result of one-at-a-time inversion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from monai_semgan.inversion.perceptual import make_perceptual

__all__ = ["InversionResult", "LatentInverter", "inversion_learning_rate", "noise_regularization"]


@dataclass
class InversionResult:
    """What :meth:`LatentInverter.invert` returns; tensors are batched over the input slices.

    Attributes:
        ws: W+ latents ``[N, num_ws, w_dim]``.
        noise: the optimized noise maps (``SemanticGenerator.noise_resolutions``), each ``[N, 1, r, r]``.
        image: reconstructions ``[N, C, R, R]``.
        label_logits: generated label logits ``[N, L, R, R]``: the segmentation.
        loss: final objective per slice ``[N]`` (``nan`` in quick mode).
        steps: optimization steps each slice took ``[N]`` (fewer than asked when it stopped early).
    """

    ws: torch.Tensor
    noise: list[torch.Tensor]
    image: torch.Tensor
    label_logits: torch.Tensor
    loss: torch.Tensor
    steps: torch.Tensor

    @classmethod
    def cat(cls, parts: Sequence[InversionResult]) -> InversionResult:
        """Join results of consecutive chunks of slices into one, in order."""
        return cls(
            ws=torch.cat([p.ws for p in parts]),
            noise=[torch.cat(maps) for maps in zip(*(p.noise for p in parts))],
            image=torch.cat([p.image for p in parts]),
            label_logits=torch.cat([p.label_logits for p in parts]),
            loss=torch.cat([p.loss for p in parts]),
            steps=torch.cat([p.steps for p in parts]),
        )


def inversion_learning_rate(step: int, steps: int, lr: float, warmup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleGAN2 projector schedule: linear warm-up over the first ``warmup`` fraction, cosine ramp-down over the last
    ``rampdown`` fraction.

    Args:
        step: current step, from 0.
        steps: total steps.
        lr: peak learning rate.
        warmup: warm-up fraction (0: none).
        rampdown: ramp-down fraction (0: none).

    Returns:
        the learning rate of ``step``.
    """
    if steps < 1:
        return lr
    t = step / steps
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if warmup > 0:
        # step + 1: the first step moves, as in the paper's code where the lr is set before each step
        ramp *= min(1.0, (step + 1) / (warmup * steps))
    return lr * ramp


def noise_regularization(noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-sample penalty on spatial autocorrelation of the noise maps, at every scale down to 8 x 8 (StyleGAN2's
    projector): keeps optimized noise from smuggling in image content.

    Args:
        noise: maps ``[N, 1, r, r]``.

    Returns:
        ``[N]``.
    """
    total = noise[0].new_zeros(noise[0].shape[0])
    for n in noise:
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (n * torch.roll(n, 1, dims=2)).mean(dim=(1, 2, 3)).square()
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


def _normalize_noise_(noise: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for n in noise:
            mean = n.mean(dim=(1, 2, 3), keepdim=True)
            std = n.std(dim=(1, 2, 3), keepdim=True)
            n.sub_(mean).div_(std + 1e-8)


class LatentInverter:
    """Invert images into the generator: ``E(x)`` as the start, then Adam on W+ and the noise maps.

    A plain object holding references to the networks (not an ``nn.Module``), so a module that owns an inverter
    does not save the generator's and encoder's weights twice.

    Objective per slice (paper defaults): ``perceptual + 0.1 * MSE + 100 * noise regularizer
    + 0.001 * ||w - E(G(w))||^2``, Adam with learning rate 0.1, 5 % warm-up, cosine ramp-down over the last 25 %.

    Args:
        generator: a trained :class:`~monai_semgan.networks.SemanticGenerator` (kept frozen).
        encoder: a :class:`~monai_semgan.networks.LatentEncoder`; ``None`` starts every slice from the mean W.
        steps: optimization steps; 0 is quick mode (encoder only).
        lr: peak learning rate.
        lr_warmup: warm-up fraction of the steps.
        lr_rampdown: ramp-down fraction of the steps.
        perceptual: ``"ssim"``, ``"lpips"``, ``"none"`` or a module mapping an image pair to per-sample distances.
        lpips_weights: VGG16 weights for LPIPS (see :class:`~monai_semgan.inversion.LPIPSDistance`).
        perceptual_weight: weight of the perceptual term.
        mse_weight: weight of the pixel MSE.
        noise_reg_weight: weight of :func:`noise_regularization`.
        encoder_reg_weight: weight of ``||w - E(G(w))||^2`` (mean over W+); needs an encoder.
        optimize_noise: optimize the noise maps too (else they stay at the generator's constant noise).
        chunk_size: slices optimized together; bounds memory.
        early_stop_patience: stop a slice after this many steps without improving its loss by ``early_stop_tol``
            (relative); ``None`` runs every step.
        early_stop_tol: relative improvement that counts.
        progress: show a tqdm bar over steps.

    Raises:
        ValueError: on negative steps, a non-positive chunk size or patience, or an unknown
            perceptual kind.
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module | None = None,
        steps: int = 100,
        lr: float = 0.1,
        lr_warmup: float = 0.05,
        lr_rampdown: float = 0.25,
        perceptual: str | nn.Module | None = "ssim",
        lpips_weights: str | None = None,
        perceptual_weight: float = 1.0,
        mse_weight: float = 0.1,
        noise_reg_weight: float = 100.0,
        encoder_reg_weight: float = 0.001,
        optimize_noise: bool = True,
        chunk_size: int = 32,
        early_stop_patience: int | None = None,
        early_stop_tol: float = 1e-3,
        progress: bool = False,
    ) -> None:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}.")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        if early_stop_patience is not None and early_stop_patience < 1:
            raise ValueError(f"early_stop_patience must be >= 1 or None, got {early_stop_patience}.")
        self.generator = generator
        self.encoder = encoder
        if isinstance(perceptual, str) or perceptual is None:
            perceptual = make_perceptual(perceptual or "none", lpips_weights)
        self.perceptual = perceptual
        self.steps = steps
        self.lr, self.lr_warmup, self.lr_rampdown = lr, lr_warmup, lr_rampdown
        self.perceptual_weight = perceptual_weight
        self.mse_weight = mse_weight
        self.noise_reg_weight = noise_reg_weight
        self.encoder_reg_weight = encoder_reg_weight
        self.optimize_noise = optimize_noise
        self.chunk_size = chunk_size
        self.early_stop_patience = early_stop_patience
        self.early_stop_tol = early_stop_tol
        self.progress = progress

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The starting W+ of each image: the encoder's output, or the
        generator's mean W when there is no encoder."""
        if self.encoder is not None:
            return self.encoder(images)
        mean = self.generator.mean_w().to(images.device, images.dtype)
        return mean.expand(images.shape[0], self.generator.num_ws, -1).clone()

    def _objective(self, images: torch.Tensor, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        fake, _ = self.generator.synthesis(ws, noise=noise)
        if fake.dtype in (torch.float16, torch.bfloat16):
            fake = fake.float()  # the losses in float32 when the synthesis ran under autocast
        loss = self.mse_weight * (fake - images).square().flatten(1).mean(dim=1)
        if self.perceptual is not None and self.perceptual_weight:
            loss = loss + self.perceptual_weight * self.perceptual(fake, images)
        if self.optimize_noise and self.noise_reg_weight:
            loss = loss + self.noise_reg_weight * noise_regularization(noise)
        if self.encoder is not None and self.encoder_reg_weight:
            loss = loss + self.encoder_reg_weight * (ws - self.encoder(fake)).square().flatten(1).mean(dim=1)
        return loss

    def invert(self, images: torch.Tensor, steps: int | None = None) -> InversionResult:
        """Invert ``[N, C, R, R]`` images in [-1, 1], ``chunk_size`` at a time.

        Args:
            images: the slices, on the generator's device.
            steps: override of the optimization steps (0: quick mode).

        Returns:
            the latents, noise, reconstructions and label logits.

        Raises:
            ValueError: when the images do not match the generator's channels and resolution.
        """
        g = self.generator
        expected = (g.image_channels, g.resolution, g.resolution)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"expected images [N, {', '.join(map(str, expected))}], got {tuple(images.shape)}.")
        steps = self.steps if steps is None else steps
        return InversionResult.cat([self._invert_chunk(chunk, steps) for chunk in images.split(self.chunk_size)])

    def _invert_chunk(self, images: torch.Tensor, steps: int) -> InversionResult:
        g = self.generator
        n = images.shape[0]
        if isinstance(self.perceptual, nn.Module):
            self.perceptual.to(images.device)
        frozen = [m for m in (g, self.encoder, self.perceptual) if isinstance(m, nn.Module)]
        grad_flags = [[p.requires_grad for p in m.parameters()] for m in frozen]
        for m in frozen:
            m.requires_grad_(False)
        try:
            with torch.no_grad():
                ws = self.encode(images).detach().clone()
            noise = [c.to(images.device, images.dtype).expand(n, -1, -1, -1).clone() for c in g.const_noise()]
            taken = torch.full((n,), steps, dtype=torch.long, device=images.device)
            loss = torch.full((n,), float("nan"), device=images.device)
            if steps > 0:
                ws, noise, loss, taken = self._optimize(images, ws, noise, steps)
            with torch.no_grad():
                image, label = g.synthesis(ws, noise=noise)
        finally:
            for m, flags in zip(frozen, grad_flags):
                for p, flag in zip(m.parameters(), flags):
                    p.requires_grad_(flag)
        return InversionResult(ws, noise, image, label, loss, taken)

    def _optimize(
        self, images: torch.Tensor, ws: torch.Tensor, noise: list[torch.Tensor], steps: int
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        latent = ws.requires_grad_(True)
        params = [latent]
        if self.optimize_noise:
            for m in noise:
                m.requires_grad_(True)
            params += noise
        optimizer = torch.optim.Adam(params, lr=self.lr, betas=(0.9, 0.999))
        best = torch.full((n,), float("inf"), device=images.device)
        stale = torch.zeros(n, dtype=torch.long, device=images.device)
        stopped = torch.zeros(n, dtype=torch.bool, device=images.device)
        taken = torch.full((n,), steps, dtype=torch.long, device=images.device)
        held: list[torch.Tensor] = [p.detach().clone() for p in params]
        loss = best
        bar = tqdm(range(steps), desc="inversion", leave=False, disable=not self.progress)
        with torch.enable_grad():
            for step in bar:
                for group in optimizer.param_groups:
                    group["lr"] = inversion_learning_rate(step, steps, self.lr, self.lr_warmup, self.lr_rampdown)
                loss = self._objective(images, latent, noise)
                if self.early_stop_patience is not None:
                    with torch.no_grad():
                        current = loss.detach()
                        # the first evaluation is the baseline (best starts at inf: inf - tol * inf is nan)
                        finite = torch.isfinite(best)
                        threshold = torch.where(finite, best - self.early_stop_tol * best.abs(), best)
                        improved = ~finite | (current < threshold)
                        best = torch.where(improved, current, torch.minimum(best, current))
                        stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
                        newly = ~stopped & (stale >= self.early_stop_patience)
                        if bool(newly.any()):
                            for p, h in zip(params, held):
                                h[newly] = p.detach()[newly]
                            taken[newly] = step
                            stopped |= newly
                        if bool(stopped.all()):
                            break
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimizer.step()
                with torch.no_grad():
                    if self.optimize_noise:
                        _normalize_noise_(noise)
                    if bool(stopped.any()):
                        # a stopped slice keeps the latent it had when it stopped
                        for p, h in zip(params, held):
                            p[stopped] = h[stopped]
                if self.progress:
                    bar.set_postfix(loss=f"{float(loss.detach().mean()):.4f}")
            with torch.no_grad():
                loss = self._objective(images, latent, noise).detach()
        noise = [m.detach() for m in noise]
        return latent.detach(), noise, loss, taken
