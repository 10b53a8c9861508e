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
"""SemanticGAN as a segmentation network: image slices in, label logits out (encoder + generator + inversion)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_semgan.engines.precision import autocast, parse_amp, resolve_amp
from monai_semgan.inversion.latent_inverter import LatentInverter

__all__ = ["SemanticSegmenter"]


class SemanticSegmenter(nn.Module):
    """A ``torch.nn.Module`` whose forward maps images ``[N, C, H, W]`` in [-1, 1] to label logits ``[N, L, H, W]``,
    so MONAI inferers (``SliceInferer``), bundle tools (``verify_net_in_out``, ``ckpt_export``) and MONAI Label drive
    SemanticGAN like any segmentation network.

    Quick mode (``steps=0``): ``label(G(E(x)))``, one forward pass, exportable to TorchScript by tracing. Optimize mode
    (``steps > 0``): the encoder's latent refined by test-time optimization (:class:`LatentInverter`); this needs
    gradients, which forward enables itself, so it also works under ``torch.no_grad()`` as inferers call it. Inputs of
    another size are resized to the generator's resolution and the logits back.

    The state dict holds ``generator.*`` and ``encoder.*``; the inverter's settings are not weights.

    Args:
        generator: a :class:`~monai_semgan.networks.SemanticGenerator`.
        encoder: a :class:`~monai_semgan.networks.LatentEncoder` of the same resolution and W+ shape.
        steps: test-time optimization steps (0: quick mode).
        amp: autocast precision of the forward pass (and of the optimization's passes): ``"auto"`` (bf16 in quick
            mode where the input's device has native bf16, the CPU included; float32 for test-time optimization,
            whose result bf16 round-off changes), ``"bf16"``, ``"fp16"`` (CUDA) or ``"off"`` (the default, float32);
            see :func:`~monai_semgan.engines.precision.resolve_amp`. The logits come back as float32; a trace for
            TorchScript is always float32.
        inverter_args: further :class:`LatentInverter` arguments (``lr``, ``perceptual``, ``lpips_weights``,
            ``chunk_size``, ``early_stop_patience``, loss weights, ...).

    Raises:
        ValueError: when the encoder's output does not fit the generator.
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        steps: int = 0,
        amp: bool | str | None = "off",
        **inverter_args: Any,
    ) -> None:
        super().__init__()
        parse_amp(amp)
        if (encoder.num_ws, encoder.w_dim, encoder.resolution) != (
            generator.num_ws,
            generator.w_dim,
            generator.resolution,
        ):
            raise ValueError(
                f"encoder (resolution {encoder.resolution}, W+ {encoder.num_ws} x {encoder.w_dim}) does not fit the "
                f"generator (resolution {generator.resolution}, W+ {generator.num_ws} x {generator.w_dim})."
            )
        self.generator = generator
        self.encoder = encoder
        self.resolution = generator.resolution
        self.inverter = LatentInverter(generator, encoder, steps=steps, **inverter_args)
        self.amp = amp

    @property
    def architecture(self) -> dict[str, Any]:
        """``{"target": ..., "args": {"generator": ..., "encoder": ...}}``: the parts' architectures (see
        :func:`~monai_semgan.networks.build_network`); the inverter's settings are chosen at inference time."""
        from monai_semgan.networks.model_file import network_architecture

        return {
            "target": f"{type(self).__module__.rsplit('.', 1)[0]}.{type(self).__name__}",
            "args": {"generator": network_architecture(self.generator), "encoder": network_architecture(self.encoder)},
        }

    @property
    def steps(self) -> int:
        """Test-time optimization steps (0: quick mode)."""
        return self.inverter.steps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Segment ``[N, C, H, W]`` slices; returns label logits ``[N, L, H, W]``."""
        size = tuple(image.shape[2:])
        r = self.resolution
        x = image.float()
        # a traced (exported) model takes [N, C, R, R] only: shapes are fixed in the trace
        resize = not torch.jit.is_tracing() and size != (r, r)
        if resize:
            x = F.interpolate(x, size=(r, r), mode="area")
        dtype = None if torch.jit.is_tracing() else resolve_amp(self.amp, x.device)
        if self.inverter.steps > 0 and parse_amp(self.amp) == "auto":
            dtype = None  # the optimization amplifies bf16 round-off (masks at Dice 0.46 from float32's): float32
        with autocast(x.device, dtype):
            if self.inverter.steps > 0:
                logits = self.inverter.invert(x).label_logits
            else:
                ws = self.inverter.encode(x)
                _, logits = self.generator.synthesis(ws, noise_mode="const")
        logits = logits.float()
        if resize:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
