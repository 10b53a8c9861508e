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
"""Load exported weights (``models/model.pt``) into a network, with errors that say which file and what differs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["checkpoint_resolution", "load_network_weights", "read_weights_file"]


def checkpoint_resolution(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> int | None:
    """The output resolution of the :class:`~monai_semgan.networks.SemanticGenerator` weights in ``state_dict``.

    Args:
        state_dict: a generator's (``prefix=""``) or a module's holding one under ``prefix`` (e.g. ``"generator."``).
        prefix: key prefix of the generator.

    Returns:
        the resolution, or ``None`` when the state dict holds no synthesis blocks.
    """
    blocks = {int(k[len(prefix) :].split(".")[1]) for k in state_dict if k.startswith(prefix + "blocks.")}
    if not blocks and f"{prefix}const" not in state_dict:
        return None
    return 2 ** (len(blocks) + 2)


def read_weights_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    Raises:
        FileNotFoundError: when ``path`` does not exist (the message says which run writes it).
        ValueError: when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: model file not found. Train first (configs/train.json writes the generator, "
            "configs/train_encoder.json the segmenter, configs/train_unet.json the U-Net), or point model_path at it."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read the model file: {err}") from err


def load_network_weights(network: nn.Module, path: str | os.PathLike, map_location: str = "cpu") -> nn.Module:
    """Load a ``state_dict`` file into ``network`` (strict), in place.

    Args:
        network: the module (a generator, or a module with a ``generator`` submodule such as the segmenter).
        path: the weights file.
        map_location: where tensors are loaded.

    Returns:
        ``network``.

    Raises:
        FileNotFoundError: when ``path`` does not exist (the message says which run writes it).
        ValueError: naming the file, when it is not a state dict, was trained at another resolution, or does not fit
            the network (other channel widths, another kind of network).
    """
    path = Path(path)
    state = read_weights_file(path, map_location)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}.")
    own = network.state_dict()
    # the network is a generator, or holds one as ``generator`` (the segmenter)
    for prefix, module in (("", network), ("generator.", getattr(network, "generator", None))):
        expected = getattr(module, "resolution", None)
        if expected is None or f"{prefix}const" not in own:
            continue
        found = checkpoint_resolution(state, prefix)
        if found is not None and found != expected:
            raise ValueError(
                f"{path}: the weights are for resolution {found}, the network is built for {expected}; "
                f"set resolution to {found} (and the same channel settings as the training run)."
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        details = []
        if mismatched:
            k = mismatched[0]
            details.append(
                f"{len(mismatched)} tensors of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                f"{tuple(own[k].shape)} in the network; other channel or latent widths?)"
            )
        if missing:
            details.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise ValueError(f"{path}: the weights do not fit {type(network).__name__}: " + "; ".join(details) + ".")
    network.load_state_dict(state)
    return network
