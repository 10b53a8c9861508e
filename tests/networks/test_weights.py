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
"""load_network_weights and checkpoint_resolution: round trips, and errors that name the file and what differs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from monai_semgan.networks import LatentEncoder, SemanticGenerator, checkpoint_resolution, load_network_weights
from monai_semgan.segmentation import SemanticSegmenter

GEN = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 256, "channel_multiplier": 1, "channel_max": 32}
ENC = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 32}


def generator(resolution: int = 16, seed: int = 0, **kwargs) -> SemanticGenerator:
    torch.manual_seed(seed)
    return SemanticGenerator(resolution=resolution, **{**GEN, **kwargs})


def segmenter(resolution: int = 16, seed: int = 0) -> SemanticSegmenter:
    g = generator(resolution, seed)
    e = LatentEncoder(resolution=resolution, num_ws=g.num_ws, w_dim=g.w_dim, **ENC)
    with torch.no_grad():
        e.head.weight.normal_()  # so a load visibly changes the encoder too
    return SemanticSegmenter(g, e)


def snapshot(network: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def assert_state_equal(network: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = network.state_dict()
    assert set(state) == set(expected)
    for k, v in expected.items():
        assert torch.equal(state[k], v), k


def assert_state_differs(network: nn.Module, other: dict[str, torch.Tensor]) -> None:
    state = network.state_dict()
    assert any(not torch.equal(state[k], v) for k, v in other.items() if state[k].numel() and v.abs().sum() > 0)


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_checkpoint_resolution_of_a_generator(resolution: int) -> None:
    g = generator(resolution)
    assert checkpoint_resolution(g.state_dict()) == resolution
    prefixed = {f"generator.{k}": v for k, v in g.state_dict().items()}
    assert checkpoint_resolution(prefixed, "generator.") == resolution
    # the wrong prefix finds no generator
    assert checkpoint_resolution(prefixed) is None
    assert checkpoint_resolution(g.state_dict(), "generator.") is None


def test_checkpoint_resolution_without_generator_keys() -> None:
    assert checkpoint_resolution({}) is None
    assert checkpoint_resolution({"foo": torch.zeros(1)}) is None
    # a 4 x 4 generator trunk (const, no blocks) is resolution 4
    assert checkpoint_resolution({"const": torch.zeros(1, 8, 4, 4)}) == 4


def test_generator_round_trip(tmp_path: Path) -> None:
    source = generator(16, seed=1)
    with torch.no_grad():
        source.mapping.w_avg.normal_()  # buffers travel too
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)
    target = generator(16, seed=2)
    assert_state_differs(target, source.state_dict())
    returned = load_network_weights(target, path)
    assert returned is target
    assert_state_equal(target, source.state_dict())
    ws = torch.randn(2, target.num_ws, target.w_dim)
    torch.testing.assert_close(target.synthesis(ws, noise_mode="const"), source.synthesis(ws, noise_mode="const"))


def test_accepts_str_paths(tmp_path: Path) -> None:
    source = generator(8, seed=1)
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)
    target = load_network_weights(generator(8, seed=2), str(path))
    assert_state_equal(target, source.state_dict())


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "model.pt"
    g = generator(8)
    before = snapshot(g)
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_network_weights(g, path)
    assert_state_equal(g, before)
    # a directory is not a weights file either
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_network_weights(g, tmp_path)


@pytest.mark.parametrize("file_res, net_res", [(32, 16), (8, 16), (16, 32)])
def test_other_resolution_names_both_and_the_path(tmp_path: Path, file_res: int, net_res: int) -> None:
    path = tmp_path / f"g{file_res}.pt"
    torch.save(generator(file_res, seed=1).state_dict(), path)
    g = generator(net_res, seed=2)
    before = snapshot(g)
    with pytest.raises(ValueError) as info:
        load_network_weights(g, path)
    message = str(info.value)
    assert str(path) in message
    assert f"resolution {file_res}" in message and str(net_res) in message
    assert_state_equal(g, before)


def test_other_channel_widths_mention_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(generator(16, seed=1, channel_max=16).state_dict(), path)
    g = generator(16, seed=2)
    before = snapshot(g)
    with pytest.raises(ValueError, match="another shape") as info:
        load_network_weights(g, path)
    message = str(info.value)
    assert str(path) in message and "SemanticGenerator" in message
    # the example names one mismatched tensor with its shapes in the file and in the network
    key = re.search(r"e\.g\. ([\w.]+): (\([\d, ]+\)) in the file, (\([\d, ]+\)) in the network", message)
    assert key is not None, message
    name, in_file, in_net = key.groups()
    file_state = torch.load(path, weights_only=True)
    assert in_file == str(tuple(file_state[name].shape)) and in_net == str(tuple(g.state_dict()[name].shape))
    assert in_file != in_net
    assert_state_equal(g, before)


def test_missing_and_unexpected_tensors(tmp_path: Path) -> None:
    g = generator(8, seed=2)
    before = snapshot(g)
    state = generator(8, seed=1).state_dict()
    state.pop("mapping.w_avg")
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing") as info:
        load_network_weights(g, path)
    message = str(info.value)
    assert "mapping.w_avg" in message and "extra.weight" in message and "unexpected" in message
    assert_state_equal(g, before)


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).byte().numpy().tobytes()
    )
    g = generator(8)
    before = snapshot(g)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_network_weights(g, path)
    assert_state_equal(g, before)


@pytest.mark.parametrize("content", [[torch.zeros(1)], {"a": 1.0}, torch.zeros(3)])
def test_not_a_state_dict_names_the_file(tmp_path: Path, content: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    g = generator(8)
    before = snapshot(g)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_network_weights(g, path)
    assert_state_equal(g, before)


def test_segmenter_round_trip(tmp_path: Path) -> None:
    source = segmenter(16, seed=1)
    path = tmp_path / "segmenter.pt"
    torch.save(source.state_dict(), path)
    assert checkpoint_resolution(source.state_dict(), "generator.") == 16
    target = segmenter(16, seed=2)
    assert_state_differs(target, source.state_dict())
    load_network_weights(target, path)
    assert_state_equal(target, source.state_dict())
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


@pytest.mark.parametrize("file_res, net_res", [(32, 16), (8, 16)])
def test_segmenter_resolution_mismatch(tmp_path: Path, file_res: int, net_res: int) -> None:
    path = tmp_path / "segmenter.pt"
    torch.save(segmenter(file_res, seed=1).state_dict(), path)
    s = segmenter(net_res, seed=2)
    before = snapshot(s)
    with pytest.raises(ValueError) as info:
        load_network_weights(s, path)
    message = str(info.value)
    assert str(path) in message and f"resolution {file_res}" in message and str(net_res) in message
    assert_state_equal(s, before)


def test_generator_file_into_a_segmenter_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "generator.pt"
    torch.save(generator(16, seed=1).state_dict(), path)
    s = segmenter(16, seed=2)
    before = snapshot(s)
    with pytest.raises(ValueError, match="SemanticSegmenter") as info:
        load_network_weights(s, path)
    assert str(path) in str(info.value)
    assert_state_equal(s, before)
