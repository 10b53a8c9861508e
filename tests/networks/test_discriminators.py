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
"""ImageDiscriminator and JointDiscriminator: shapes, errors, R1 double backward through every layer."""

from __future__ import annotations

import pytest
import torch

from monai_semgan.losses import r1_penalty
from monai_semgan.networks import ImageDiscriminator, JointDiscriminator, MinibatchStdDev


def small_image_d(resolution: int = 32) -> ImageDiscriminator:
    torch.manual_seed(0)
    return ImageDiscriminator(resolution, channel_base=512, channel_multiplier=1, channel_max=32)


@pytest.mark.parametrize("resolution", [8, 32, 64])
def test_image_discriminator_shapes(resolution: int) -> None:
    d = small_image_d(resolution)
    assert len(d.blocks) == resolution.bit_length() - 3
    assert d(torch.randn(4, 1, resolution, resolution)).shape == (4, 1)


def test_image_discriminator_rejects_wrong_input() -> None:
    d = small_image_d()
    with pytest.raises(ValueError, match="expected images"):
        d(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="expected images"):
        d(torch.randn(2, 3, 32, 32))


def test_minibatch_stddev_appends_group_statistics() -> None:
    x = torch.randn(6, 4, 3, 3)  # 6 is no multiple of 4: groups of gcd(6, 4) = 2
    y = MinibatchStdDev(group_size=4)(x)
    assert y.shape == (6, 5, 3, 3)
    torch.testing.assert_close(y[:, :4], x)
    expected = (x.reshape(2, 3, 4, 3, 3).var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    torch.testing.assert_close(y[:3, 4, 0, 0], expected)
    torch.testing.assert_close(y[3:, 4, 0, 0], expected)
    # identical samples have no spread
    same = MinibatchStdDev()(torch.ones(4, 2, 2, 2))
    assert same[:, 2].max() < 1e-3


def test_image_discriminator_r1_reaches_every_parameter() -> None:
    d = small_image_d()
    real = torch.randn(4, 1, 32, 32, requires_grad=True)
    penalty = r1_penalty(d(real), real)
    penalty.backward()
    assert penalty > 0
    missing = [n for n, p in d.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    # the last layer's bias has no effect on the input gradient
    assert missing == ["out.bias"]


def test_joint_discriminator_multiscale_features() -> None:
    torch.manual_seed(0)
    d = JointDiscriminator(image_channels=1, label_channels=2, num_scales=3, base_channels=8, num_layers=3)
    outputs = d(torch.randn(2, 1, 64, 64), torch.randn(2, 2, 64, 64))
    assert len(outputs) == 3
    assert all(len(scale) == 5 for scale in outputs)  # 3 stride-2, 1 stride-1, logits
    assert [scale[-1].shape[1] for scale in outputs] == [1, 1, 1]
    sizes = [scale[-1].shape[-1] for scale in outputs]
    assert sizes[0] > sizes[1] > sizes[2]
    assert outputs[0][0].shape[1] == 8 and outputs[0][3].shape[1] == 64


def test_joint_discriminator_rejects_mismatched_pairs() -> None:
    d = JointDiscriminator(base_channels=8)
    with pytest.raises(ValueError, match="same N, H, W"):
        d(torch.randn(2, 1, 32, 32), torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="label channels"):
        d(torch.randn(2, 1, 32, 32), torch.randn(2, 3, 32, 32))


def test_joint_discriminator_r1_double_backward() -> None:
    torch.manual_seed(0)
    d = JointDiscriminator(base_channels=8)
    image = torch.randn(2, 1, 32, 32, requires_grad=True)
    label = torch.randn(2, 1, 32, 32, requires_grad=True)
    penalty = r1_penalty(d(image, label), [image, label])
    penalty.backward()
    assert torch.isfinite(penalty) and penalty > 0
    # biases in front of an instance norm, and the logits' biases, cannot change the input gradient
    weights = {n: p.grad for n, p in d.named_parameters() if "bias" not in n}
    assert len(weights) == 15
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in weights.values())
