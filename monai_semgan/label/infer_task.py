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
"""MONAI Label inference task that runs a bundle's ``configs/inference.json``: the same preprocessing, slice-wise
inferer and inversion back to the input's grid as ``python -m monai.bundle run inference``."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose, SaveImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

__all__ = ["SemanticGanInferTask", "bundle_labels", "read_bundle_config", "served_model_name"]

logger = logging.getLogger(__name__)

# MONAI Label passes the request's file path as ``image_path``; MONAI >= 1.6 spatial transforms (e.g. ``Spacingd``)
# update the metadata of every ``image_*`` key and fail on a string, so the key is held aside around the transforms
_HELD_KEYS = ("image_path",)


def read_bundle_config(bundle: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> ConfigParser:
    """Parse a bundle's ``configs/inference.json`` with ``bundle_root`` set to the bundle and the given overrides.

    Raises:
        FileNotFoundError: when the bundle has no ``configs/inference.json``.
    """
    path = Path(bundle) / "configs" / "inference.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundle has no inference config.")
    parser = ConfigParser()
    parser.read_config(str(path))
    parser.update({"bundle_root": str(bundle), **dict(overrides or {})})
    return parser


def bundle_labels(bundle: str | os.PathLike) -> dict[str, int]:
    """Label name -> value in the written mask, from the bundle metadata's output ``channel_def`` (a one-channel
    binary model writes 1 for its channel; a multi-channel model writes the channel index).

    Raises:
        FileNotFoundError: when the bundle has no ``configs/metadata.json``.
    """
    path = Path(bundle) / "configs" / "metadata.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundle has no metadata.")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    pred = next(iter(metadata["network_data_format"]["outputs"].values()))
    channels = {int(k): str(v) for k, v in pred.get("channel_def", {}).items()}
    if len(channels) == 1:
        return {next(iter(channels.values())).lower(): 1}
    return {name.lower(): index for index, name in channels.items() if name.lower() != "background"}


# a model name is a URL path segment (/infer/<name>) and a folder name (<workspace>/model/<name>)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def served_model_name(bundle: str | os.PathLike, override: str | None = None) -> str:
    """The name MONAI Label serves a bundle under (``/infer/<name>``, ``/train/<name>``), whatever its folder is called.

    Args:
        bundle: the bundle folder (``configs/metadata.json``).
        override: the name to use instead (``--conf model_name``); empty or None for the metadata's.

    Returns:
        ``override``, else the metadata's ``model_name`` key, else its ``name`` in lowercase with every run of other
        characters than letters and digits replaced by ``_`` (``"Liver CT (v2)"`` -> ``liver_ct_v2``).

    Raises:
        FileNotFoundError: when the bundle has no ``configs/metadata.json``.
        ValueError: when the name is not a plain name (letters, digits, ``_``, ``.``, ``-``; at most 100) or the
            metadata has neither key.
    """
    path = Path(bundle) / "configs" / "metadata.json"
    if override:
        name, source = override, "--conf model_name"
    else:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the bundle has no metadata.")
        metadata = json.loads(path.read_text(encoding="utf-8"))
        if metadata.get("model_name"):
            name, source = str(metadata["model_name"]), f"{path} (model_name)"
        elif metadata.get("name"):
            name, source = re.sub(r"[^a-z0-9]+", "_", str(metadata["name"]).lower()).strip("_"), f"{path} (name)"
        else:
            raise ValueError(f"{path}: no model_name or name to serve the bundle under; give --conf model_name.")
    if not _MODEL_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} from {source} is not a plain name (letters, digits, '_', '.', '-').")
    return name


class _MONAILabelResult:
    """Last post transform: the mask as a ``[H, W, D]`` uint8 MetaTensor on the input's grid, with its affine where
    MONAI Label's writer looks for it, written as NIfTI."""

    def __call__(self, data: dict) -> dict:
        pred = data["pred"]
        affine = pred.affine if isinstance(pred, MetaTensor) else None
        plain = pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)
        mask = plain[0].to(torch.uint8)
        data["pred"] = MetaTensor(mask, affine=affine) if affine is not None else mask
        if affine is not None:
            data["pred_meta_dict"] = {"affine": affine}
        data["result_extension"] = ".nii.gz"
        data["result_dtype"] = "uint8"
        return data


class SemanticGanInferTask(BasicInferTask):
    """Automatic segmentation with a SemanticGAN bundle (``bundles/liver_ct`` or any bundle with the same configs).

    Args:
        bundle: the bundle folder (``configs/inference.json``, ``configs/metadata.json``).
        model_paths: model files, oldest first; the last that exists is used, and a newer file (e.g. written by
            training from the datastore) is picked up on the next request. The network and its preprocessing are
            built from the file (:func:`~monai_semgan.networks.load_model`): no architecture setting is needed.
        overrides: bundle config overrides (``mode``, ``optimize_steps``, ``modality``, ...).

        description: shown in MONAI Label's ``/info/``; the bundle's description by default.

    Raises:
        FileNotFoundError: when none of ``model_paths`` exists.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        model_paths: Sequence[str | os.PathLike],
        overrides: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> None:
        self.bundle = Path(bundle)
        self.parser = read_bundle_config(self.bundle, overrides)
        metadata = json.loads((self.bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
        existing = [Path(p) for p in model_paths if Path(p).is_file()]
        if not existing:
            raise FileNotFoundError(f"no model file found: {[str(p) for p in model_paths]}; train first.")
        self._loaded: tuple[str, float] | None = None
        network = self._load(existing[-1])
        super().__init__(
            path=[str(p) for p in model_paths],
            network=network,
            type=InferType.SEGMENTATION,
            labels=bundle_labels(self.bundle),
            dimension=3,
            description=description or metadata.get("description", "SemanticGAN"),
            load_strict=True,
            model_state_dict="state_dict",
            config={"mode": self.parser["mode"], "optimize_steps": int(self.parser["optimize_steps"])},
        )

    def _load(self, path: Path) -> torch.nn.Module:
        """Parse the inference config for the model file ``path``: its network (built from the file) and the
        preprocessing at the network's resolution."""
        self.parser["model_path"] = str(path)
        self.parser.parse(reset=True)
        network = self.parser.get_parsed_content("network_def", instantiate=True)
        self._pre = self.parser.get_parsed_content("preprocessing", instantiate=True)
        self._loaded = (str(path), path.stat().st_mtime)
        return network

    def _refresh(self) -> None:
        """Rebuild network and preprocessing when a newer model file (another architecture, perhaps) is served."""
        path = self.get_path()
        if path and self._loaded != (str(path), Path(path).stat().st_mtime):
            self.network = self._load(Path(path))
            self._networks.clear()

    def pre_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        """The bundle's preprocessing (load NIfTI / DICOM, checks, RAS, intensity, square pad, resize)."""
        self._refresh()
        return list(self._pre.transforms)

    def run_pre_transforms(self, data: dict, transforms: Sequence[Callable]) -> dict:
        """Run the preprocessing with ``image_path`` held aside (see ``_HELD_KEYS``)."""
        held = {k: data.pop(k) for k in _HELD_KEYS if k in data}
        try:
            data = super().run_pre_transforms(data, transforms)
        finally:
            data.update(held)
        return data

    def inferer(self, data: dict | None = None):
        """The bundle's ``SliceInferer`` over axial slices."""
        return self.parser.get_parsed_content("inferer", instantiate=True)

    def inverse_transforms(self, data: dict | None = None) -> None:
        """None: the post transforms invert the preprocessing themselves (``Invertd``)."""
        return None

    def _get_network(self, device: str, data: dict):
        network = super()._get_network(device, data)
        # request options: "mode" (quick / optimize) and "optimize_steps"
        mode = (data or {}).get("mode", self._config.get("mode", "quick"))
        steps = int((data or {}).get("optimize_steps", self._config.get("optimize_steps", 100)))
        network.inverter.steps = 0 if mode == "quick" else steps
        return network

    def run_inferer(self, data: dict, convert_to_batch: bool = True, device: str = "cuda") -> dict:
        """Run the inferer, keeping the output a MetaTensor that carries the input's transform history for
        ``Invertd``."""
        image = data[self.input_key]
        network = self._get_network(device, data)
        batch = image[None].to(torch.device(device))
        with torch.no_grad():
            logits = self.inferer(data)(batch, network)
        pred = MetaTensor(logits[0].detach().cpu(), meta=dict(image.meta))
        pred.applied_operations = list(image.applied_operations)
        data[self.output_label_key] = pred
        return data

    def post_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        """The bundle's postprocessing without its file writers, then the result MONAI Label writes."""
        post = self.parser.get_parsed_content("postprocessing", instantiate=True)
        transforms = post.transforms if isinstance(post, Compose) else post
        return [t for t in transforms if not isinstance(t, SaveImaged)] + [_MONAILabelResult()]
