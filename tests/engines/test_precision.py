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
"""The amp setting: its spellings, "auto" on this machine's CPU (and with the detection overridden), the float32
parts of a bf16 generator, AutocastModule around MONAI's U-Net, and bf16 training and segmentation that stay finite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNet

from monai_semgan.engines import AutocastModule, autocast, cpu_has_native_bf16, parse_amp, resolve_amp
from monai_semgan.networks import LatentEncoder, SemanticGenerator
from monai_semgan.segmentation import SemanticSegmenter


@pytest.mark.parametrize(
    "given, mode",
    [(None, "auto"), ("auto", "auto"), (True, "bf16"), ("true", "bf16"), ("BF16", "bf16"), ("bfloat16", "bf16"),
     (False, "off"), ("false", "off"), ("off", "off"), ("float32", "off"), ("fp16", "fp16"), ("float16", "fp16")],
)  # fmt: skip
def test_amp_spellings(given: object, mode: str) -> None:
    assert parse_amp(given) == mode  # type: ignore[arg-type]


def test_bad_amp_and_fp16_off_cuda_are_refused() -> None:
    with pytest.raises(ValueError, match=r"amp 'half': expected one of \['auto', 'bf16', 'fp16', 'off'\]"):
        parse_amp("half")
    with pytest.raises(ValueError, match="amp 'fp16' needs a CUDA device"):
        resolve_amp("fp16", "cpu")
    assert resolve_amp("bf16", "cpu") == torch.bfloat16 and resolve_amp("off", "cpu") is None


def test_auto_follows_the_cpu_flags_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    native = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    cpu_has_native_bf16.cache_clear()
    monkeypatch.delenv("MONAI_SEMGAN_CPU_BF16", raising=False)
    try:
        assert cpu_has_native_bf16() is native
        assert resolve_amp("auto", "cpu") == (torch.bfloat16 if native else None)
        for forced, expected in (("0", None), ("1", torch.bfloat16)):
            cpu_has_native_bf16.cache_clear()
            monkeypatch.setenv("MONAI_SEMGAN_CPU_BF16", forced)
            assert resolve_amp("auto", "cpu") == expected
    finally:
        cpu_has_native_bf16.cache_clear()


def _tiny_generator() -> SemanticGenerator:
    torch.manual_seed(0)
    return SemanticGenerator(16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)


def test_a_bf16_generator_keeps_mapping_and_modulation_in_float32() -> None:
    g = _tiny_generator().eval()
    seen: dict[str, torch.dtype] = {}
    g.mapping.register_forward_hook(lambda m, i, o: seen.__setitem__("w", o.dtype))
    g.blocks[0].conv1.conv.affine.register_forward_hook(lambda m, i, o: seen.__setitem__("styles", o.dtype))
    z = torch.randn(4, 16)
    with torch.no_grad():
        ref_img, ref_lab = g.synthesis(g.mapping(z)[:, None].expand(-1, g.num_ws, -1), noise_mode="const")
        with autocast("cpu", torch.bfloat16):
            img, lab = g.synthesis(g.mapping(z)[:, None].expand(-1, g.num_ws, -1), noise_mode="const")
    assert seen == {"w": torch.float32, "styles": torch.float32}
    assert img.dtype == torch.bfloat16  # the convolutions ran in bf16
    # bf16 keeps about 3 significant digits, and the error grows over the layers: a few percent of the output range
    for out, ref in ((img, ref_img), (lab, ref_lab)):
        assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_autocast_module_runs_monais_unet_in_bf16_and_returns_float32() -> None:
    torch.manual_seed(0)
    unet = UNet(2, 1, 1, channels=(4, 8), strides=(2,), num_res_units=1)
    wrapped = AutocastModule(unet, "bf16")
    seen = []
    unet.model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(2, 1, 16, 16)
    out = wrapped(x)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    assert set(wrapped.state_dict()) == {f"module.{k}" for k in unet.state_dict()}
    out.sum().backward()  # gradients reach the network's own float32 parameters
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in unet.parameters())
    assert AutocastModule(unet, "off")(x).dtype == torch.float32
    with pytest.raises(ValueError, match="amp 'yes please'"):
        AutocastModule(unet, "yes please")


@pytest.mark.parametrize("steps", [0, 3])
def test_a_bf16_segmenter_gives_float32_logits_close_to_float32(steps: int) -> None:
    g = _tiny_generator().eval()
    torch.manual_seed(1)
    enc = LatentEncoder(16, g.num_ws, g.w_dim, channel_base=256, channel_max=16).eval()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    ref = SemanticSegmenter(g, enc, steps=steps, amp="off", perceptual="none")(x)
    out = SemanticSegmenter(g, enc, steps=steps, amp="bf16", perceptual="none")(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (torch.sigmoid(out) - torch.sigmoid(ref)).abs().max() < 0.1


def test_auto_is_float32_where_bf16_measured_worse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder's training and test-time optimization stay float32 under "auto" (docs/benchmarks.md,
    "Precision"); quick mode follows the device."""
    cpu_has_native_bf16.cache_clear()
    monkeypatch.setenv("MONAI_SEMGAN_CPU_BF16", "1")
    try:
        g = _tiny_generator().eval()
        enc = LatentEncoder(16, g.num_ws, g.w_dim, channel_base=256, channel_max=16).eval()
        seen: list[torch.dtype] = []
        g.blocks[0].conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        x = torch.rand(2, 1, 16, 16) * 2 - 1
        SemanticSegmenter(g, enc, steps=0, amp="auto")(x)
        assert seen[-1] == torch.bfloat16
        seen.clear()
        SemanticSegmenter(g, enc, steps=2, amp="auto", perceptual="none")(x)
        assert seen and set(seen) == {torch.float32}
    finally:
        cpu_has_native_bf16.cache_clear()
