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
"""What the GAN and the encoder trainers share: a ``monai.engines.Trainer`` driven by a :class:`PairedSliceLoader`
that is re-seeded every epoch, the ``amp`` precision, a guard against NaN losses, and the random generators' states in
checkpoints."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn as nn
from ignite.engine import Events
from monai.data import MetaTensor
from monai.engines import Trainer
from torch.nn.parallel import DistributedDataParallel

from monai_semgan.engines.paired_loader import PairedSliceLoader
from monai_semgan.engines.precision import autocast, resolve_amp

__all__ = ["NonFiniteLossError", "PairedTrainer", "plain_tensor", "unwrap_ddp"]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss and the iteration."""


def plain_tensor(x: torch.Tensor) -> torch.Tensor:
    """A plain tensor: a MetaTensor routes every op of the networks through ``__torch_function__`` (several times
    slower)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


def unwrap_ddp(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper, or the module itself."""
    return module.module if isinstance(module, DistributedDataParallel) else module


class PairedTrainer(Trainer):
    """Base of :class:`SemanticGanTrainer` and :class:`EncoderTrainer`.

    Subclasses set up their networks and then call ``self._register_handlers(handlers)``.

    Args:
        device: training device.
        max_epochs: epochs; an epoch is ``data_loader``'s ``epoch_length`` iterations.
        data_loader: the paired labeled / unlabeled loader, seeded from the epoch at each epoch start.
        amp: autocast precision, ``"auto"`` (bf16 where the device has native bf16 arithmetic, CPU included),
            ``"bf16"``, ``"fp16"`` (CUDA, with a gradient scaler) or ``"off"``; see
            :func:`~monai_semgan.engines.precision.resolve_amp`.
        non_blocking: non-blocking host-to-device copies.

    Raises:
        ValueError: when ``data_loader`` is not a :class:`PairedSliceLoader`.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        data_loader: PairedSliceLoader,
        amp: bool | str | None = "auto",
        non_blocking: bool = False,
    ) -> None:
        if not isinstance(data_loader, PairedSliceLoader):
            raise ValueError(f"data_loader must be a PairedSliceLoader, got {type(data_loader).__name__}.")
        device = torch.device(device)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=data_loader,
            epoch_length=data_loader.epoch_length,
            non_blocking=non_blocking,
            handlers=None,
            amp=False,  # the subclasses run their own autocast regions (see _autocast)
            decollate=False,
        )
        # MONAI's own amp (a CUDA GradScaler made in Trainer.run) stays off; amp_dtype is this engine's precision
        self.amp_dtype = resolve_amp(amp, device)
        self.add_event_handler(Events.EPOCH_STARTED, lambda engine: data_loader.set_epoch(engine.state.epoch))

    def _autocast(self, enabled: bool = True) -> AbstractContextManager:
        """Autocast to :attr:`amp_dtype` (a no-op when ``amp`` is off or ``enabled`` is false)."""
        return autocast(self.state.device, self.amp_dtype if enabled else None)

    def _check(self, name: str, value: torch.Tensor) -> float:
        """``value`` as a float, or :class:`NonFiniteLossError` naming the loss and the iteration."""
        number = float(value.detach())
        if not math.isfinite(number):
            raise NonFiniteLossError(
                f"{name} became {number} at iteration {self.state.iteration}; training stopped, the last checkpoint "
                "is left as it was."
            )
        return number

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Ignite's state plus the random generators' states, so a resumed run continues exactly."""
        state = dict(super().state_dict())
        state["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore what :meth:`state_dict` saved."""
        state = dict(state_dict)
        rng = state.pop("torch_rng", None)
        if rng is not None:
            torch.set_rng_state(rng)
        cuda_rng = state.pop("cuda_rng", None)
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_rng)
        super().load_state_dict(state)
