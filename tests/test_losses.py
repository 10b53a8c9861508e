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
"""GAN losses and regularizers against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from monai_semgan.losses import (
    PathLengthPenalty,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    logistic_discriminator_loss,
    logistic_generator_loss,
    r1_penalty,
)


def test_logistic_losses() -> None:
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0])
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(3))) / 2 + (math.log1p(math.exp(-2)) + math.log(2)) / 2
    assert logistic_discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    expected_g = (math.log1p(math.exp(1)) + math.log1p(math.exp(-3))) / 2
    assert logistic_generator_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_hinge_losses_over_scales() -> None:
    real = [[torch.zeros(1), torch.tensor([0.5, 2.0])], [torch.zeros(1), torch.tensor([-1.0])]]
    fake = [[torch.zeros(1), torch.tensor([-2.0, 0.0])], [torch.zeros(1), torch.tensor([1.0])]]
    # scale 0: relu(1 - r) = [0.5, 0] -> 0.25, relu(1 + f) = [0, 1] -> 0.5; scale 1: 2 + 2
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx((0.75 + 4.0) / 2)
    assert hinge_generator_loss(fake).item() == pytest.approx((1.0 + -1.0) / 2)


def test_feature_matching() -> None:
    real = [[torch.ones(2, 3), torch.zeros(2, 1), torch.zeros(2)]]
    fake = [[torch.zeros(2, 3, requires_grad=True), torch.ones(2, 1), torch.full((2,), 9.0)]]
    # two intermediate layers, weight 4 / 3 each; logits are ignored
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(4 / 3 * 2)
    loss.backward()
    assert fake[0][0].grad is not None
    assert feature_matching_loss(real, real).item() == 0.0


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm() -> None:
    weight = torch.randn(1, 3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x * weight).flatten(1).sum(1, keepdim=True)
    assert r1_penalty(logits, x).item() == pytest.approx(weight.square().sum().item(), rel=1e-5)
    # multiscale outputs sum their patch logits; several inputs add their squared norms
    y = torch.randn(5, 1, 4, 4, requires_grad=True)
    outputs = [[x * weight], [2 * y]]
    assert r1_penalty(outputs, [x, y]).item() == pytest.approx(weight.square().sum().item() + 4 * 16, rel=1e-5)


def test_path_length_of_a_linear_map() -> None:
    torch.manual_seed(0)
    pl = PathLengthPenalty(decay=0.5)
    ws = torch.randn(64, 2, 8, requires_grad=True)
    images = ws.sum(dim=1).reshape(64, 1, 2, 4) * 3.0  # J^T y = 3 y for both latents
    penalty, length = pl(images, ws)
    # y has 8 entries of variance 1/8, so |J^T y| is about 3
    assert length.item() == pytest.approx(3.0, rel=0.2)
    assert pl.mean_length.item() == pytest.approx(0.5 * length.item(), rel=1e-5)
    assert penalty.item() >= 0
