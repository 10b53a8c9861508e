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
"""What the ``amp`` setting means: bfloat16 autocast on any device with native bf16 arithmetic, the CPU included.

``amp`` takes ``"auto"`` (the default), ``"bf16"``, ``"fp16"`` or ``"off"`` (``true`` / ``false`` as the command line
gives them are ``"bf16"`` / ``"off"``). ``"auto"`` turns bf16 on where it is fast:

* a CUDA device that supports bf16 (``torch.cuda.is_bf16_supported()``: Ampere and newer);
* a CPU whose flags (``/proc/cpuinfo``) include ``avx512_bf16`` or ``amx_bf16``: the instructions oneDNN uses for
  bf16 convolutions and matrix products (Cooper Lake, Sapphire Rapids and newer Xeons, Zen 4 and newer). Without them
  PyTorch emulates bf16 on the CPU, slower than float32, so ``"auto"`` stays off there.

``"fp16"`` is CUDA only and comes with a gradient scaler (:func:`needs_grad_scaler`); bf16 has float32's range and
needs none. ``MONAI_SEMGAN_CPU_BF16=0`` (or ``1``) overrides the CPU detection.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "AMP_MODES",
    "AutocastModule",
    "autocast",
    "cpu_has_native_bf16",
    "needs_grad_scaler",
    "parse_amp",
    "resolve_amp",
]

AMP_MODES = ("auto", "bf16", "fp16", "off")
_ALIASES = {
    "true": "bf16",
    "yes": "bf16",
    "on": "bf16",
    "1": "bf16",
    "bfloat16": "bf16",
    "false": "off",
    "no": "off",
    "0": "off",
    "none": "off",
    "float16": "fp16",
    "float32": "off",
    "fp32": "off",
}
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (``avx512_bf16`` or ``amx_bf16`` among the ``/proc/cpuinfo`` flags);
    ``MONAI_SEMGAN_CPU_BF16=0/1`` overrides. ``False`` where ``/proc/cpuinfo`` does not exist."""
    forced = os.environ.get("MONAI_SEMGAN_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(flag in flags for flag in _CPU_FLAGS)
    return False


def parse_amp(amp: bool | str | None) -> str:
    """The mode (one of :data:`AMP_MODES`) an ``amp`` setting names.

    Args:
        amp: ``"auto"``, ``"bf16"``, ``"fp16"``, ``"off"``, their aliases (``true``, ``bfloat16``, ``float32``, ...),
            a boolean, or ``None`` (``"auto"``).

    Returns:
        the mode.

    Raises:
        ValueError: on anything else.
    """
    if amp is None:
        return "auto"
    if isinstance(amp, bool):
        return "bf16" if amp else "off"
    text = str(amp).strip().lower()
    mode = _ALIASES.get(text, text)
    if mode not in AMP_MODES:
        raise ValueError(f"amp {amp!r}: expected one of {list(AMP_MODES)} (or true / false).")
    return mode


def resolve_amp(amp: bool | str | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype an ``amp`` setting means on ``device``, or ``None`` for float32.

    Args:
        amp: see :func:`parse_amp`.
        device: where the networks run.

    Returns:
        ``torch.bfloat16``, ``torch.float16`` or ``None``.

    Raises:
        ValueError: on an unknown setting, or ``"fp16"`` on a device other than CUDA.
    """
    device = torch.device(device)
    mode = parse_amp(amp)
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError(f"amp 'fp16' needs a CUDA device (the device is {device}); use 'bf16' or 'auto'.")
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """Float16's narrow range needs loss scaling; bf16 and float32 do not."""
    return dtype == torch.float16


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, disabled when ``dtype`` is ``None``."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


class AutocastModule(nn.Module):
    """Run a network's forward under the ``amp`` autocast of its input's device and return float32, for engines that
    autocast on CUDA only (MONAI's ``SupervisedTrainer`` and ``SupervisedEvaluator``): ``AutocastModule(unet, "auto")``
    trains and infers MONAI's U-Net in bf16 on a CPU with native bf16. The wrapped network's parameters are the
    wrapper's, so an optimizer or a checkpoint of the network itself sees the same tensors; save the network, not the
    wrapper.

    Args:
        module: the network.
        amp: see :func:`resolve_amp`.

    Raises:
        ValueError: on an unknown ``amp``.
    """

    def __init__(self, module: nn.Module, amp: bool | str | None = "auto") -> None:
        super().__init__()
        parse_amp(amp)
        self.module = module
        self.amp = amp

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        dtype = None if torch.jit.is_tracing() else resolve_amp(self.amp, x.device)
        with autocast(x.device, dtype):
            out = self.module(x, *args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out
