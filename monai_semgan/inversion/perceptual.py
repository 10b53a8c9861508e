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
"""Perceptual distances for encoder training and test-time optimization, one value per sample.

The paper uses LPIPS (VGG16), whose ImageNet weights cannot be downloaded on machines without internet access, so the
term is pluggable: :class:`LPIPSDistance` when the user has the VGG16 weights on disk, otherwise :class:`SSIMDistance`
(MONAI's ``SSIMLoss``), which needs no weights at all. See ``docs/inversion.md`` for what the choice costs in Dice.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from monai.losses import SSIMLoss

__all__ = ["PERCEPTUAL_KINDS", "LPIPSDistance", "SSIMDistance", "make_perceptual"]

PERCEPTUAL_KINDS = ("ssim", "lpips", "none")


class SSIMDistance(nn.Module):
    """``1 - SSIM`` per sample for images in [-1, 1] (MONAI's ``SSIMLoss``, Gaussian window).

    Args:
        win_size: window size; 7 suits 64 px slices, 11 (SSIM's usual) 256 px.
        data_range: value range of the images.
    """

    def __init__(self, win_size: int = 7, data_range: float = 2.0) -> None:
        super().__init__()
        self.loss = SSIMLoss(spatial_dims=2, data_range=data_range, win_size=win_size, reduction="none")

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` pair to ``[N]`` distances."""
        return self.loss(x.float(), target.float()).reshape(x.shape[0], -1).mean(dim=1)


class LPIPSDistance(nn.Module):
    """LPIPS (VGG16) per sample, with the backbone's weights read from a local file (nothing is downloaded).

    The ``lpips`` package (``pip install "monai-semgan[lpips]"``) ships its linear calibration layers; the VGG16
    backbone comes from ``weights_path``: torchvision's ImageNet VGG16 state dict (``vgg16-397923af.pth``, keys
    ``features.N.*``) or a whole LPIPS state dict (keys ``net.sliceK.N.*`` and ``linK.*``). Single-channel images are
    repeated to three channels.

    Args:
        weights_path: the weights file.

    Raises:
        FileNotFoundError: when ``weights_path`` does not exist.
        ImportError: when the ``lpips`` package is not installed.
        ValueError: when the file holds no VGG16 features (the message names the file).
    """

    # VGG16 ``features`` indices that start each LPIPS slice
    _SLICE_STARTS = (0, 4, 9, 16, 23, 30)

    def __init__(self, weights_path: str | os.PathLike) -> None:
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: LPIPS / VGG16 weights file not found.")
        try:
            import lpips
        except ImportError as err:
            raise ImportError('LPIPS needs the lpips package: pip install "monai-semgan[lpips]".') from err
        # pnet_rand: build VGG16 without torchvision's download; the weights come from ``path`` below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lpips still calls torchvision's deprecated `pretrained=`
            self.lpips = lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=True, verbose=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: cannot read the weights: {err}") from err
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}.")
        backbone = {k: v for k, v in state.items() if k.startswith("net.slice")}
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "features" and len(parts) == 3 and int(parts[1]) < self._SLICE_STARTS[-1]:
                index = int(parts[1])
                slice_id = next(i for i in range(5) if index < self._SLICE_STARTS[i + 1]) + 1
                backbone[f"net.slice{slice_id}.{index}.{parts[2]}"] = value
        expected = {k for k in self.lpips.state_dict() if k.startswith("net.")}
        missing = expected - set(backbone)
        if missing:
            raise ValueError(
                f"{path}: not VGG16 weights for LPIPS; {len(missing)} backbone tensors missing, "
                f"e.g. {sorted(missing)[0]}."
            )
        linear = {k: v for k, v in state.items() if k.startswith("lin")}
        try:
            self.lpips.load_state_dict({**backbone, **linear}, strict=False)
        except RuntimeError as err:
            raise ValueError(f"{path}: the weights do not fit VGG16: {err}") from err
        self.lpips.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W]`` pair in [-1, 1] to ``[N]`` distances."""
        if x.shape[1] == 1:
            x, target = x.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        return self.lpips(x.float(), target.float()).reshape(x.shape[0])


def make_perceptual(kind: str = "ssim", weights_path: str | os.PathLike | None = None) -> nn.Module | None:
    """Build the perceptual term by name.

    Args:
        kind: ``"ssim"`` (default, weight-free), ``"lpips"`` (needs ``weights_path``) or ``"none"``; a given
            ``weights_path`` selects LPIPS whatever ``kind`` says, so a single override switches a bundle to LPIPS.
        weights_path: VGG16 / LPIPS weights for ``"lpips"``; empty or ``None`` otherwise.

    Returns:
        the distance module, or ``None`` for ``"none"``.

    Raises:
        ValueError: on an unknown kind, or ``"lpips"`` without a weights path.
    """
    if kind not in PERCEPTUAL_KINDS:
        raise ValueError(f"perceptual kind must be one of {PERCEPTUAL_KINDS}, got {kind!r}.")
    if weights_path:
        return LPIPSDistance(weights_path)
    if kind == "lpips":
        raise ValueError("perceptual='lpips' needs the VGG16 weights' path (lpips_weights); none was given.")
    return SSIMDistance() if kind == "ssim" else None
