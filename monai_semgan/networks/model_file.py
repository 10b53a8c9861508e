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
"""Self-describing model files: a network's weights together with the constructor that builds it.

A model file (``models/model.pt``) is a ``torch.save`` of::

    {"format": "monai_semgan.model", "format_version": 1,
     "architecture": {"target": "monai_semgan.networks.SemanticGenerator", "args": {"resolution": 64, ...}},
     "metadata": {...},  # optional plain data, e.g. the U-Net's training resolution
     "state_dict": {...}}

An architecture is plain data (strings, numbers, lists, nested architectures), so files load with
``torch.load(weights_only=True)`` and nothing in a file can run code: ``target`` must name a ``torch.nn.Module``
class. Every config builds its network from the file, so architecture settings are stated once, where a model is
first trained. Files written by monai-semgan 0.5.x hold a bare state dict; they load when the architecture is given.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from monai.utils import instantiate

from monai_semgan.atomic_write import atomic_path
from monai_semgan.networks.weights import checkpoint_resolution, load_network_weights, read_weights_file

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "build_network",
    "load_model",
    "network_architecture",
    "read_model_info",
    "save_model",
]

MODEL_FORMAT = "monai_semgan.model"
MODEL_FORMAT_VERSION = 1


def _is_architecture(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"target", "args"}


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain data (JSON-like), so that ``torch.load(weights_only=True)`` reads it back."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"architecture argument {where} is a {type(value).__name__}; only plain data can be saved.")


def _network_class(target: str) -> type[nn.Module]:
    from monai.utils.module import locate  # MONAI's own resolver of dotted names, as its config parser uses

    cls = locate(target)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"architecture target {target!r} is not a torch.nn.Module class.")
    return cls


def build_network(architecture: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """Build the network an architecture describes and remember the architecture on it (``network.architecture``).

    Args:
        architecture: ``{"target": "package.Class", "args": {...}}``; an argument that is itself an architecture
            (the segmenter's generator and encoder) is built first.
        overrides: further constructor arguments that are not part of the architecture (e.g. the segmenter's
            test-time optimization steps).

    Returns:
        the network (on the CPU, freshly initialized).

    Raises:
        ValueError: when ``architecture`` is not of that form or its target is not a ``torch.nn.Module`` class.
        TypeError: when an argument is not plain data.
    """
    if not _is_architecture(architecture) or not isinstance(architecture["args"], Mapping):
        raise ValueError(
            f"an architecture is {{'target': 'package.Class', 'args': {{...}}}}, got {json.dumps(architecture)[:200]}."
        )
    args = _plain(dict(architecture["args"]), "args")
    cls = _network_class(str(architecture["target"]))
    built = {k: build_network(v) if _is_architecture(v) else v for k, v in args.items()}
    network = instantiate(f"{cls.__module__}.{cls.__qualname__}", "default", **built, **overrides)
    if not isinstance(getattr(type(network), "architecture", None), property):  # the segmenter composes its own
        network.architecture = {"target": str(architecture["target"]), "args": args}
    return network


def network_architecture(network: nn.Module) -> dict[str, Any]:
    """The architecture of a network built by :func:`build_network` or loaded by :func:`load_model`.

    Args:
        network: the network (a ``DistributedDataParallel`` wrapper is looked through).

    Returns:
        a copy of ``{"target": ..., "args": ...}``.

    Raises:
        ValueError: when the network does not know its architecture.
    """
    network = (
        getattr(network, "module", network) if isinstance(network, nn.parallel.DistributedDataParallel) else network
    )
    architecture = getattr(network, "architecture", None)
    if not _is_architecture(architecture):
        raise ValueError(
            f"{type(network).__name__} does not know its architecture: build it with "
            "monai_semgan.networks.build_network({'target': ..., 'args': {...}}) or pass the architecture."
        )
    return copy.deepcopy(_plain(dict(architecture), "architecture"))


def save_model(
    network: nn.Module,
    path: str | os.PathLike,
    architecture: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``network``'s weights with its architecture to ``path``, atomically.

    Args:
        network: the network (a DDP wrapper is looked through).
        path: destination file (folders are created).
        architecture: the architecture, when the network does not carry one.
        metadata: plain data stored beside it (e.g. ``{"resolution": 64}`` for a network whose architecture does not
            fix its input size).

    Returns:
        the path written.

    Raises:
        ValueError: when no architecture is known.
    """
    module = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    architecture = network_architecture(module) if architecture is None else _plain(dict(architecture), "architecture")
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": architecture,
        "metadata": _plain(dict(metadata or {}), "metadata"),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _read(path: Path, map_location: str | torch.device) -> Mapping[str, Any]:
    content = read_weights_file(path, map_location)
    if not isinstance(content, Mapping):
        raise ValueError(f"{path}: expected a model file (a dict), got {type(content).__name__}.")
    return content


def _is_bare_state_dict(content: Mapping[str, Any]) -> bool:
    return bool(content) and all(isinstance(v, torch.Tensor) for v in content.values())


def _check_format(path: Path, content: Mapping[str, Any]) -> None:
    if content.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a monai-semgan model file (no format {MODEL_FORMAT!r}).")
    version = content.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format version {version!r}; this monai-semgan reads up to {MODEL_FORMAT_VERSION}. "
            "Update monai-semgan."
        )


def _legacy_message(path: Path, content: Mapping[str, Any]) -> str:
    resolution = checkpoint_resolution(content) or checkpoint_resolution(content, "generator.")
    hint = f" (its generator is for resolution {resolution})" if resolution else ""
    return (
        f"{path}: a bare state dict written by monai-semgan 0.5.x{hint} does not say its architecture. Give it once: "
        "set model_architecture in the config to {'target': ..., 'args': {...}} (see the bundle README, "
        "'Model files'), or rewrite the file with monai_semgan.networks.save_model(load_model(path, architecture), "
        "new_path)."
    )


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """``{"architecture": ..., "metadata": ...}`` of a model file, without building the network.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when it is not a model file, is of a newer format, or is a 0.5.x bare state dict.
    """
    path = Path(path)
    content = _read(path, "cpu")
    if _is_bare_state_dict(content):
        raise ValueError(_legacy_message(path, content))
    _check_format(path, content)
    return {
        "architecture": copy.deepcopy(dict(content["architecture"])),
        "metadata": copy.deepcopy(dict(content.get("metadata") or {})),
    }


def load_model(
    path: str | os.PathLike,
    architecture: Mapping[str, Any] | str | None = None,
    map_location: str | torch.device = "cpu",
    **overrides: Any,
) -> nn.Module:
    """Build the network a model file describes and load its weights.

    Args:
        path: the model file.
        architecture: only for 0.5.x files (bare state dicts): the architecture to build (a mapping or its JSON
            text). Model files use their own.
        map_location: where tensors are loaded.
        overrides: constructor arguments that are not architecture (e.g. ``steps=100`` for the segmenter).

    Returns:
        the network with the file's weights (on the CPU, in training mode as ``nn.Module`` starts).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming the file, when it cannot be read, is not a model file, is a 0.5.x file and no architecture
            is given, or its weights do not fit its architecture.
    """
    path = Path(path)
    if isinstance(architecture, str):  # a command line passes JSON text
        architecture = json.loads(architecture) if architecture.strip() else None
    content = _read(path, map_location)
    if _is_bare_state_dict(content):
        if architecture is None:
            raise ValueError(_legacy_message(path, content))
        network = build_network(architecture, **overrides)
        return load_network_weights(network, path, map_location=map_location)
    _check_format(path, content)
    network = build_network(content["architecture"], **overrides)
    state = content.get("state_dict")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: the model file holds no state_dict.")
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the file's own architecture: {err}") from err
    return network
