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
"""SemanticSegmenter in quick mode: label(G(E(x))), slice by slice inside SliceInferer, and its input checks."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import SliceInferer

from monai_semgan.networks import LatentEncoder, SemanticGenerator
from monai_semgan.segmentation import SemanticSegmenter

R = 16
SIZES = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 32}


def make_segmenter() -> SemanticSegmenter:
    torch.manual_seed(0)
    g = SemanticGenerator(resolution=R, z_dim=32, w_dim=32, mapping_layers=2, **SIZES).eval()
    e = LatentEncoder(resolution=R, num_ws=g.num_ws, w_dim=g.w_dim, **SIZES).eval()
    with torch.no_grad():
        e.head.weight.normal_(std=0.5)  # so the latents depend on the image
    return SemanticSegmenter(g, e, steps=0).eval()


def test_quick_mode_labels_the_encoders_latents() -> None:
    segmenter = make_segmenter()
    x = torch.rand(7, 1, R, R) * 2 - 1
    with torch.no_grad():
        logits = segmenter(x)
        expected = segmenter.generator.synthesis(segmenter.encoder(x), noise_mode="const")[1]
    assert logits.shape == (7, 1, R, R)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_slice_inferer_segments_each_slice_alone() -> None:
    torch.manual_seed(3)
    segmenter = make_segmenter()
    inferer = SliceInferer(roi_size=(R, R), spatial_dim=2, sw_batch_size=4)
    volume = torch.rand(1, 1, R, R, 9) * 2 - 1
    with torch.no_grad():
        out = inferer(volume, segmenter)
        for k in (0, 4, 8):
            assert torch.allclose(out[..., k], segmenter(volume[..., k]), atol=1e-5)


def test_encoder_that_does_not_fit_the_generator_is_refused() -> None:
    g = SemanticGenerator(resolution=R, z_dim=32, w_dim=32, mapping_layers=2, **SIZES)
    e = LatentEncoder(resolution=R, num_ws=g.num_ws, w_dim=16, **SIZES)
    with pytest.raises(ValueError, match="does not fit"):
        SemanticSegmenter(g, e)
