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
"""SemanticSegmenter's latent prior across slices (``slice_sigma``) in quick mode, alone and inside SliceInferer."""

from __future__ import annotations

import torch
from monai.inferers import SliceInferer

from monai_semgan.inversion import smooth_across_slices
from monai_semgan.networks import LatentEncoder, SemanticGenerator
from monai_semgan.segmentation import SemanticSegmenter

R = 16
SIZES = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 32}


def make_segmenter(slice_sigma: float) -> SemanticSegmenter:
    torch.manual_seed(0)
    g = SemanticGenerator(resolution=R, z_dim=32, w_dim=32, mapping_layers=2, **SIZES).eval()
    e = LatentEncoder(resolution=R, num_ws=g.num_ws, w_dim=g.w_dim, **SIZES).eval()
    with torch.no_grad():
        e.head.weight.normal_(std=0.5)  # so the latents depend on the image
    return SemanticSegmenter(g, e, steps=0, slice_sigma=slice_sigma).eval()


def test_quick_mode_labels_the_smoothed_latents() -> None:
    segmenter = make_segmenter(1.5)
    x = torch.rand(7, 1, R, R) * 2 - 1
    with torch.no_grad():
        logits = segmenter(x)
        ws = smooth_across_slices(segmenter.encoder(x), 1.5)
        expected = segmenter.generator.synthesis(ws, noise_mode="const")[1]
    assert torch.allclose(logits, expected, atol=1e-5)


def test_slice_inferer_volume_with_and_without_the_prior() -> None:
    torch.manual_seed(3)
    inferer = SliceInferer(roi_size=(R, R), spatial_dim=2, sw_batch_size=64)
    plain, smoothed = make_segmenter(0.0), make_segmenter(2.0)
    same = (torch.rand(1, 1, R, R, 1) * 2 - 1).expand(1, 1, R, R, 9).contiguous()
    varied = torch.rand(1, 1, R, R, 9) * 2 - 1
    with torch.no_grad():
        # identical slices have identical latents, which smoothing leaves alone
        assert torch.allclose(inferer(same, plain), inferer(same, smoothed), atol=1e-5)
        assert not torch.allclose(inferer(varied, plain), inferer(varied, smoothed), atol=1e-3)
