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
"""Differentiable augmentation of discriminator inputs, for GAN training on few images.

With a few hundred real slices the discriminators memorise them and stop teaching the generator. Differentiable
augmentation (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020) transforms
every input of a discriminator, real and generated, in the discriminator and the generator steps alike, with
operations gradients pass through, so the generator is not taught to produce augmented images.

Written for images in [-1, 1] with air at -1 and signed masks (background -1): shifted-in and cut-out regions are
filled with -1, and an (image, mask) pair gets the same geometric transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["DifferentiableAugment"]

POLICIES = ("intensity", "gamma", "translation", "cutout")
PHOTOMETRIC = ("intensity", "gamma")  # image-only operations; they leave the geometry alone


class DifferentiableAugment:
    """Random intensity and gamma (image only), translation and cutout (image and masks together), differentiable.

    Args:
        policy: comma-separated operations from ``intensity`` (brightness shift up to +-0.25 and contrast scale
            0.75-1.33 about the slice mean), ``gamma`` (``((x + 1) / 2) ** g * 2 - 1`` with ``g`` log-uniform in
            ``[1 / gamma_max, gamma_max]``: a monotone contrast change that keeps air at -1), ``translation``
            (integer shift up to ``translation_ratio`` of the size, filled with -1) and ``cutout`` (a square of
            ``cutout_ratio`` of the size set to -1); empty: identity.
        translation_ratio: largest shift as a fraction of the image size.
        cutout_ratio: cutout side as a fraction of the image size.
        gamma_max: largest gamma exponent of ``gamma`` (and the inverse of the smallest).

    Raises:
        ValueError: on an unknown operation, or ``gamma_max`` below 1.
    """

    def __init__(
        self,
        policy: str | Sequence[str] = "",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        gamma_max: float = 2.0,
    ):
        ops = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip()]
        unknown = sorted(set(ops) - set(POLICIES))
        if unknown:
            raise ValueError(f"unknown differentiable augmentation {unknown}; known: {list(POLICIES)}.")
        if gamma_max < 1.0:
            raise ValueError(
                f"gamma_max must be at least 1 (exponents lie in [1 / gamma_max, gamma_max]), got {gamma_max}."
            )
        self.ops = ops
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        self.gamma_max = gamma_max

    @classmethod
    def photometric(
        cls, policy: str | Sequence[str] | DifferentiableAugment = "", name: str = "policy"
    ) -> DifferentiableAugment:
        """An augmentation of the image alone: ``policy`` built (or taken as it is) and checked to leave geometry alone.

        For inputs whose target is the unaugmented image or mask (the encoder's input, a segmenter's batch).

        Args:
            policy: comma-separated operations, or an augmentation already built.
            name: what the caller calls ``policy`` (a config key), for the error message.

        Returns:
            the augmentation.

        Raises:
            ValueError: on an unknown operation, or one that moves or hides pixels (``translation``, ``cutout``): the
                target would no longer match the input.
        """
        augment = policy if isinstance(policy, cls) else cls(policy)
        if augment.geometric:
            raise ValueError(
                f"{name} must be photometric ({', '.join(PHOTOMETRIC)}), since the target must still match the "
                f"input; got {augment.ops}."
            )
        return augment

    def __bool__(self) -> bool:
        return bool(self.ops)

    @property
    def geometric(self) -> bool:
        """Whether an operation moves or hides pixels (so it must also be applied to the masks and targets)."""
        return any(op not in PHOTOMETRIC for op in self.ops)

    def __call__(self, image: torch.Tensor, *masks: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Augment ``image`` ``[B, C, H, W]`` and, with the same geometry, each mask ``[B, L, H, W]``.

        Returns:
            the image alone when no mask is given, else ``(image, *masks)``.
        """
        tensors = [image, *masks]
        for op in self.ops:
            if op == "intensity":
                tensors[0] = self._intensity(tensors[0])
            elif op == "gamma":
                tensors[0] = self._gamma(tensors[0])
            elif op == "translation":
                tensors = self._translate(tensors)
            else:
                tensors = self._cutout(tensors)
        return tensors[0] if not masks else tuple(tensors)

    @staticmethod
    def _intensity(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        shift = (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * 0.5
        scale = torch.exp((torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * 0.575)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * scale + mean + shift

    def _gamma(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        log_g = (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1) * torch.log(
            x.new_tensor(self.gamma_max)
        )
        unit = ((x + 1) / 2).clamp(0.0, 1.0)
        # air stays exactly 0; the clamp keeps the power's gradient finite near 0 for exponents below 1
        powered = torch.where(unit > 0, unit.clamp_min(1e-6).pow(torch.exp(log_g)), torch.zeros_like(unit))
        return powered * 2 - 1

    def _translate(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        x = tensors[0]
        b, _, h, w = x.shape
        limit_h, limit_w = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
        dy = torch.randint(-limit_h, limit_h + 1, (b,), device=x.device)
        dx = torch.randint(-limit_w, limit_w + 1, (b,), device=x.device)
        # source pixel of every output pixel; out-of-range sources read the -1 border of a padded copy
        rows = (torch.arange(h, device=x.device)[None] - dy[:, None]).clamp(-1, h) + 1  # [B, H] in padded coordinates
        cols = (torch.arange(w, device=x.device)[None] - dx[:, None]).clamp(-1, w) + 1
        out = []
        for t in tensors:
            padded = F.pad(t, (1, 1, 1, 1), value=-1.0)
            c = t.shape[1]
            index_r = rows[:, None, :, None].expand(b, c, h, w + 2)
            t = padded.gather(2, index_r)
            index_c = cols[:, None, None, :].expand(b, c, h, w)
            out.append(t.gather(3, index_c))
        return out

    def _cutout(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        x = tensors[0]
        b, _, h, w = x.shape
        size_h, size_w = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        # top-left corner; the square may reach past the border, as in DiffAugment
        top = torch.randint(-(size_h // 2), h - size_h // 2 + 1, (b, 1, 1), device=x.device)
        left = torch.randint(-(size_w // 2), w - size_w // 2 + 1, (b, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device)[None, :, None]
        xs = torch.arange(w, device=x.device)[None, None, :]
        inside = (ys >= top) & (ys < top + size_h) & (xs >= left) & (xs < left + size_w)  # [B, H, W]
        keep = (~inside)[:, None].to(x.dtype)
        # x * keep + (-1) * (1 - keep): gradients reach the kept pixels
        return [t * keep - (1 - keep) for t in tensors]
