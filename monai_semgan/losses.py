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
"""Adversarial losses and regularizers of SemanticGAN.

* image discriminator: non-saturating logistic loss, lazy R1;
* joint discriminator: hinge loss, feature matching (L1 between its intermediate features on real and generated
  pairs), lazy R1 on the concatenated image + label input;
* generator: path-length regularization on the image output.

The regularizers differentiate a gradient, so every op under them must support double backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "PathLengthPenalty",
    "feature_matching_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "logistic_discriminator_loss",
    "logistic_generator_loss",
    "r1_penalty",
]

MultiscaleOutputs = Sequence[Sequence[torch.Tensor]]


def logistic_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of a discriminator: ``softplus(fake) + softplus(-real)``, averaged.

    Args:
        real_logits: logits on real samples.
        fake_logits: logits on generated samples.

    Returns:
        the scalar loss.
    """
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def logistic_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of the generator: ``softplus(-fake)``, averaged.

    Args:
        fake_logits: discriminator logits on generated samples.

    Returns:
        the scalar loss.
    """
    return F.softplus(-fake_logits).mean()


def hinge_discriminator_loss(real: MultiscaleOutputs, fake: MultiscaleOutputs) -> torch.Tensor:
    """Hinge loss of a multiscale discriminator: ``relu(1 - real) + relu(1 + fake)``, averaged over scales.

    Args:
        real: per scale, the layer outputs on real pairs (the last is the patch logits).
        fake: the same on generated pairs.

    Returns:
        the scalar loss.
    """
    losses = [F.relu(1.0 - r[-1]).mean() + F.relu(1.0 + f[-1]).mean() for r, f in zip(real, fake)]
    return torch.stack(losses).mean()


def hinge_generator_loss(fake: MultiscaleOutputs) -> torch.Tensor:
    """Generator side of the hinge loss: ``-fake``, averaged over patches and scales.

    Args:
        fake: per scale, the discriminator's layer outputs on generated pairs.

    Returns:
        the scalar loss.
    """
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching_loss(real: MultiscaleOutputs, fake: MultiscaleOutputs) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between intermediate features on real and on generated pairs.

    Each scale's intermediate layers (all but the logits) count with weight ``4 / (layers + 1)`` and the scales are
    averaged, as in pix2pixHD; the real features are treated as constants. SemanticGAN multiplies this by 2.

    Args:
        real: per scale, the layer outputs on real pairs.
        fake: the same on generated pairs.

    Returns:
        the scalar loss.
    """
    total = None
    for r_scale, f_scale in zip(real, fake):
        weight = 4.0 / len(r_scale)
        for r, f in zip(r_scale[:-1], f_scale[:-1]):
            term = F.l1_loss(f, r.detach()) * weight
            total = term if total is None else total + term
    if total is None:
        raise ValueError("feature matching needs discriminator outputs with at least one intermediate layer.")
    return total / len(real)


def r1_penalty(
    outputs: torch.Tensor | MultiscaleOutputs, inputs: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """R1 regularization: squared norm of the gradient of the discriminator's output on real data, per sample, averaged.

    Call with ``inputs`` that have ``requires_grad=True`` and ``outputs`` computed from them; the result is
    differentiable (``create_graph=True``), so ``penalty.backward()`` reaches the discriminator's weights.

    Args:
        outputs: logits ``[N, ...]``, or a multiscale discriminator's outputs (their patch logits are summed).
        inputs: the real input(s) the outputs were computed from.

    Returns:
        the scalar ``E[||grad||^2]`` (multiply by ``gamma / 2`` and the lazy interval in the trainer).
    """
    if isinstance(outputs, torch.Tensor):
        total = outputs.sum()
    else:
        total = sum(scale[-1].sum() for scale in outputs)
    inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    grads = torch.autograd.grad(total, inputs, create_graph=True)
    return sum(g.square().flatten(1).sum(1) for g in grads).mean()


class PathLengthPenalty(nn.Module):
    """Path-length regularization of the generator (StyleGAN2): keeps ``||J_w^T y||`` constant for random image-space
    directions ``y``, measured against a running mean of that length.

    Args:
        decay: update rate of the running mean (0.01).
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("mean_length", torch.zeros([]))

    def forward(self, images: torch.Tensor, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the penalty; updates the running mean in training mode.

        Args:
            images: generated images ``[N, C, H, W]``, a function of ``ws``.
            ws: the W+ latents ``[N, num_ws, w_dim]`` the images came from.

        Returns:
            ``(penalty, mean path length)``; the penalty is differentiable.
        """
        noise = torch.randn_like(images) / (images.shape[2] * images.shape[3]) ** 0.5
        (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(dim=2).mean(dim=1).sqrt()
        if self.training:
            with torch.no_grad():
                self.mean_length.lerp_(lengths.mean(), self.decay)
        penalty = (lengths - self.mean_length).square().mean()
        return penalty, lengths.mean().detach()
