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
"""Self-describing model files: round trips of every kind of network, 0.5.x files, and refused content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monai_semgan.networks import (
    MODEL_FORMAT,
    build_network,
    load_model,
    network_architecture,
    read_model_info,
    save_model,
)
from monai_semgan.segmentation import SemanticSegmenter

GENERATOR = {
    "target": "monai_semgan.networks.SemanticGenerator",
    "args": {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 1, "channel_base": 256, "channel_max": 16},
}


def segmenter() -> SemanticSegmenter:
    torch.manual_seed(0)
    g = build_network(GENERATOR)
    encoder = {
        "target": "monai_semgan.networks.LatentEncoder",
        "args": {"resolution": 16, "num_ws": g.num_ws, "w_dim": 16, "channel_base": 256, "channel_max": 16},
    }
    return SemanticSegmenter(g, build_network(encoder))


def test_segmenter_round_trip_with_inference_settings(tmp_path: Path) -> None:
    net = segmenter().eval()
    path = save_model(net, tmp_path / "models" / "model.pt")
    content = torch.load(path, weights_only=True)  # plain data: nothing in the file runs code
    assert content["format"] == MODEL_FORMAT and content["format_version"] == 1
    assert content["architecture"]["args"]["generator"] == GENERATOR
    loaded = load_model(path, steps=3).eval()
    assert isinstance(loaded, SemanticSegmenter) and loaded.steps == 3
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        loaded.inverter.steps = 0
        torch.testing.assert_close(loaded(x), net(x))
    assert read_model_info(path)["architecture"] == network_architecture(net)
    assert not list(path.parent.glob(".model.pt.*"))  # no temporary file left


def test_monai_unet_with_metadata(tmp_path: Path) -> None:
    arch = {
        "target": "monai.networks.nets.UNet",
        "args": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [4, 8], "strides": [2]},
    }
    net = build_network(arch)
    save_model(net, tmp_path / "unet.pt", metadata={"resolution": 16})
    assert read_model_info(tmp_path / "unet.pt")["metadata"] == {"resolution": 16}
    loaded = load_model(tmp_path / "unet.pt")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))


def test_legacy_bare_state_dict_needs_its_architecture(tmp_path: Path) -> None:
    g = build_network(GENERATOR)
    legacy = tmp_path / "legacy.pt"
    torch.save(g.state_dict(), legacy)
    with pytest.raises(ValueError, match=r"legacy.pt: a bare state dict written by monai-semgan 0.5.x.*resolution 16"):
        load_model(legacy)
    with pytest.raises(ValueError, match="0.5.x"):
        read_model_info(legacy)
    loaded = load_model(legacy, architecture=json.dumps(GENERATOR))  # as a command line passes it
    assert torch.equal(loaded.const, g.const)


def test_refused_files_and_architectures(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt: model file not found"):
        load_model(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt: cannot read"):
        load_model(garbage)
    newer = tmp_path / "newer.pt"
    torch.save({"format": MODEL_FORMAT, "format_version": 99, "architecture": GENERATOR, "state_dict": {}}, newer)
    with pytest.raises(ValueError, match="newer.pt: model file format version 99"):
        load_model(newer)
    with pytest.raises(ValueError, match="not a torch.nn.Module class"):
        build_network({"target": "os.system", "args": {"command": "echo no"}})
    with pytest.raises(ValueError, match="an architecture is"):
        build_network({"target": "monai_semgan.networks.SemanticGenerator"})
    with pytest.raises(ValueError, match="does not know its architecture"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "linear.pt")
    wrong = tmp_path / "wrong.pt"
    other = {**GENERATOR, "args": {**GENERATOR["args"], "w_dim": 32}}
    torch.save(
        {
            "format": MODEL_FORMAT,
            "format_version": 1,
            "architecture": other,
            "state_dict": build_network(GENERATOR).state_dict(),
        },
        wrong,
    )
    with pytest.raises(ValueError, match="wrong.pt: the weights do not fit"):
        load_model(wrong)
