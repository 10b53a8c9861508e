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
"""LatentInverter: learning-rate schedule, noise regularizer, quick mode, optimization, batching, early stopping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from monai_semgan.inversion import (
    InversionResult,
    LatentInverter,
    inversion_learning_rate,
    noise_regularization,
)
from monai_semgan.networks import LatentEncoder, SemanticGenerator

R = 16
GEN = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 256, "channel_multiplier": 1, "channel_max": 32}
ENC = {"channel_base": 256, "channel_multiplier": 1, "channel_max": 32}


def make_generator(seed: int = 0) -> SemanticGenerator:
    torch.manual_seed(seed)
    g = SemanticGenerator(resolution=R, **GEN).eval()
    with torch.no_grad():
        g.mean_w(num_samples=256)  # fills w_avg: the start of inversion without an encoder
        for layer in g._noisy_layers():
            layer.noise_strength.fill_(0.3)  # zero at init: without this the noise maps would not matter
    return g


def make_encoder(g: SemanticGenerator, seed: int = 1) -> LatentEncoder:
    torch.manual_seed(seed)
    e = LatentEncoder(resolution=R, num_ws=g.num_ws, w_dim=g.w_dim, **ENC).eval()
    with torch.no_grad():
        e.set_latent_mean(g.mapping.w_avg)
        e.head.weight.normal_(std=0.5)  # a "trained" head, so the encoder's output depends on the image
    return e


def generated_images(g: SemanticGenerator, n: int, seed: int = 2) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, g.z_dim, dtype=g.const.dtype)
        return g(z, noise_mode="const")[0]


class CountdownDistance(nn.Module):
    """A per-sample term that keeps falling fast for the samples in ``falling`` and is flat for the others.

    It does not depend on the image, so it changes no gradient: it only steers early stopping.
    """

    def __init__(self, falling: list[bool]) -> None:
        super().__init__()
        self.falling = torch.tensor(falling)
        self.calls = 0

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        term = torch.where(self.falling, -(20.0**self.calls), 0.0).to(x.dtype)
        return term + 0.0 * x.flatten(1).sum(dim=1)


class FailingDistance(nn.Module):
    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("perceptual failed")


# ---------------------------------------------------------------- learning-rate schedule


def test_learning_rate_warmup_peak_and_rampdown() -> None:
    steps, lr = 100, 0.1
    schedule = [inversion_learning_rate(s, steps, lr) for s in range(steps)]
    # warm-up over the first 5 steps: (step + 1) / 5 of the peak, so the first step already moves
    assert schedule[0] == pytest.approx(lr / 5)
    assert 0 < schedule[0] < lr
    assert schedule[:5] == pytest.approx([lr * (s + 1) / 5 for s in range(5)])
    # the peak between warm-up and ramp-down
    assert schedule[4:76] == pytest.approx([lr] * 72)
    assert inversion_learning_rate(50, steps, lr) == pytest.approx(lr)
    # cosine ramp-down over the last 25 steps, towards 0
    tail = schedule[75:]
    assert all(a > b for a, b in zip(tail, tail[1:]))
    assert schedule[90] == pytest.approx(lr * (0.5 - 0.5 * math.cos(0.4 * math.pi)))
    assert 0 < schedule[-1] < 0.01 * lr
    assert inversion_learning_rate(steps, steps, lr) == pytest.approx(0.0, abs=1e-12)
    assert max(schedule) == pytest.approx(lr)


def test_learning_rate_without_warmup_or_rampdown() -> None:
    assert inversion_learning_rate(0, 100, 0.1, warmup=0.0) == pytest.approx(0.1)
    assert inversion_learning_rate(1, 100, 0.1, warmup=0.0) == pytest.approx(0.1)
    assert inversion_learning_rate(99, 100, 0.1, warmup=0.0, rampdown=0.0) == pytest.approx(0.1)
    assert inversion_learning_rate(99, 100, 0.1, rampdown=0.0) == pytest.approx(0.1)
    # a single step is not held back by the warm-up
    assert inversion_learning_rate(0, 1, 0.1, rampdown=0.0) == pytest.approx(0.1)


# ---------------------------------------------------------------- noise regularizer


def checkerboard(r: int) -> torch.Tensor:
    i = torch.arange(r)
    return ((i[:, None] + i[None, :]) % 2 * 2 - 1).float().view(1, 1, r, r)


def test_noise_regularization_by_hand() -> None:
    # checkerboard: every neighbour has the opposite sign, so each shifted product averages to -1 and its square is 1,
    # once per direction (2); its 2 x 2 average is 0, so the coarser scales add nothing
    for r in (4, 8, 16, 32):
        assert noise_regularization([checkerboard(r)]).tolist() == pytest.approx([2.0])
    # a constant map correlates fully at every scale: 2 per scale, scales r, r / 2, ... down to 8 (or r if smaller)
    for r, scales in ((4, 1), (8, 1), (16, 2), (32, 3)):
        assert noise_regularization([torch.ones(1, 1, r, r)]).tolist() == pytest.approx([2.0 * scales])
    # two horizontally adjacent ones on 8 x 8: one product of 1 in the horizontal shift, none in the vertical one
    n = torch.zeros(1, 1, 8, 8)
    n[0, 0, 3, 4:6] = 1.0
    assert noise_regularization([n]).tolist() == pytest.approx([(1 / 64) ** 2])
    assert noise_regularization([n.transpose(2, 3)]).tolist() == pytest.approx([(1 / 64) ** 2])
    # a single pixel has no neighbour; the maps add up
    single = torch.zeros(1, 1, 8, 8)
    single[0, 0, 2, 2] = 5.0
    assert noise_regularization([single]).tolist() == [0.0]
    maps = [checkerboard(8), torch.ones(1, 1, 16, 16), single]
    assert noise_regularization(maps).tolist() == pytest.approx([2.0 + 4.0 + 0.0])


def test_noise_regularization_is_small_for_white_noise() -> None:
    torch.manual_seed(0)
    value = noise_regularization([torch.randn(1, 1, 64, 64)])
    assert value.shape == (1,)
    assert 0 < value.item() < 0.01


def test_noise_regularization_is_per_sample() -> None:
    torch.manual_seed(0)
    maps = [torch.randn(3, 1, r, r) for r in (4, 8, 8, 16, 16)]
    maps[1][0] = checkerboard(8)[0]
    maps[3][2] = 1.0
    batched = noise_regularization(maps)
    assert batched.shape == (3,)
    for i in range(3):
        alone = noise_regularization([m[i : i + 1] for m in maps])
        torch.testing.assert_close(batched[i : i + 1], alone)
    # changing one sample changes only its own value
    changed = [m.clone() for m in maps]
    changed[3][1] = torch.ones(1, 16, 16)
    other = noise_regularization(changed)
    assert other[1] > batched[1] + 1.0
    torch.testing.assert_close(other[[0, 2]], batched[[0, 2]])


def test_noise_regularization_has_gradients() -> None:
    n = torch.ones(2, 1, 8, 8, requires_grad=True)
    noise_regularization([n]).sum().backward()
    assert n.grad is not None and n.grad.abs().sum() > 0


# ---------------------------------------------------------------- inversion


def test_quick_mode_is_the_encoder_and_const_noise() -> None:
    g = make_generator()
    e = make_encoder(g)
    x = torch.rand(3, 1, R, R) * 2 - 1
    result = LatentInverter(g, e, steps=0).invert(x)
    assert isinstance(result, InversionResult)
    with torch.no_grad():
        ws = e(x)
        image, label = g.synthesis(ws, noise_mode="const")
    assert torch.equal(result.ws, ws)
    assert torch.equal(result.image, image)
    assert torch.equal(result.label_logits, label)
    assert len(result.noise) == g.num_noise
    for m, c, r in zip(result.noise, g.const_noise(), g.noise_resolutions):
        assert m.shape == (3, 1, r, r)
        assert torch.equal(m, c.expand(3, -1, -1, -1))
    assert result.steps.tolist() == [0, 0, 0]
    assert result.loss.shape == (3,) and torch.isnan(result.loss).all()
    # the ``steps`` argument of invert overrides the inverter's
    again = LatentInverter(g, e, steps=5).invert(x, steps=0)
    assert torch.equal(again.ws, ws) and again.steps.tolist() == [0, 0, 0]


def test_quick_mode_without_encoder_starts_at_the_mean_w() -> None:
    g = make_generator()
    result = LatentInverter(g, None, steps=0).invert(torch.zeros(2, 1, R, R))
    assert torch.equal(result.ws, g.mapping.w_avg.expand(2, g.num_ws, -1))


def test_optimization_reconstructs_generated_images() -> None:
    g = make_generator()
    target = generated_images(g, 2)
    inverter = LatentInverter(g, None, steps=50)
    start = inverter.invert(target, steps=0)
    result = inverter.invert(target)
    start_mse = (start.image - target).square().flatten(1).mean(dim=1)
    end_mse = (result.image - target).square().flatten(1).mean(dim=1)
    assert (end_mse < 0.25 * start_mse).all(), (start_mse, end_mse)
    assert result.steps.tolist() == [50, 50]
    assert result.loss.shape == (2,) and torch.isfinite(result.loss).all()
    # the reported loss is the objective of the returned latent; the MSE term alone is below it
    assert (result.loss >= 0.1 * end_mse - 1e-6).all()
    # the returned image and labels are the synthesis of the returned latent and noise
    with torch.no_grad():
        image, label = g.synthesis(result.ws, noise=result.noise)
    torch.testing.assert_close(result.image, image)
    torch.testing.assert_close(result.label_logits, label)
    # optimized noise maps are renormalized to zero mean and unit variance per sample
    for m in result.noise:
        torch.testing.assert_close(m.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(m.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)


def test_optimization_with_encoder_and_without_noise() -> None:
    g = make_generator()
    e = make_encoder(g)
    target = generated_images(g, 2)
    inverter = LatentInverter(g, e, steps=30, optimize_noise=False)
    start = inverter.invert(target, steps=0)
    result = inverter.invert(target)
    start_mse = (start.image - target).square().mean()
    assert (result.image - target).square().mean() < 0.5 * start_mse
    # the noise stays the generator's constant noise
    for m, c in zip(result.noise, g.const_noise()):
        assert torch.equal(m, c.expand(2, -1, -1, -1))


# Batching checks run in float64: Adam divides by sqrt(v) + eps, so round-off differences of near-zero gradients
# between a batched and a one-slice convolution are amplified in float32 into visibly different latents; in float64
# the per-slice independence is exact up to round-off.


def double_pair() -> tuple[SemanticGenerator, LatentEncoder]:
    g = make_generator().double()
    return g, make_encoder(g).double()


def assert_results_close(a: InversionResult, b: InversionResult) -> None:
    torch.testing.assert_close(a.ws, b.ws, atol=1e-8, rtol=0)
    torch.testing.assert_close(a.image, b.image, atol=1e-8, rtol=0)
    torch.testing.assert_close(a.label_logits, b.label_logits, atol=1e-8, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-8, rtol=1e-8)
    for m, n in zip(a.noise, b.noise):
        torch.testing.assert_close(m, n, atol=1e-8, rtol=0)
    assert torch.equal(a.steps, b.steps)


def test_batched_inversion_equals_one_slice_at_a_time() -> None:
    g, e = double_pair()
    x = generated_images(g, 3)
    x[2] = torch.rand(1, R, R, dtype=torch.float64) * 2 - 1  # one slice the generator did not make
    inverter = LatentInverter(g, e, steps=8, perceptual="none", chunk_size=8)
    batched = inverter.invert(x)
    assert batched.ws.dtype == torch.float64
    assert batched.ws.shape == (3, g.num_ws, g.w_dim)
    alone = [inverter.invert(x[i : i + 1]) for i in range(3)]
    assert_results_close(batched, InversionResult.cat(alone))
    # the slices did move from the encoder's start
    assert (batched.ws - e(x)).abs().amax() > 1e-3


@pytest.mark.parametrize("chunk_size", [1, 2, 4])
def test_chunks_give_the_result_of_one_chunk(chunk_size: int) -> None:
    g, e = double_pair()
    x = generated_images(g, 5)
    whole = LatentInverter(g, e, steps=5, perceptual="none", chunk_size=5).invert(x)
    chunked = LatentInverter(g, e, steps=5, perceptual="none", chunk_size=chunk_size).invert(x)
    assert chunked.ws.shape == (5, g.num_ws, g.w_dim)
    assert all(m.shape[0] == 5 for m in chunked.noise)
    assert_results_close(whole, chunked)


# ---------------------------------------------------------------- early stopping


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stop_after_patience_steps_without_improvement(patience: int) -> None:
    g = make_generator()
    x = generated_images(g, 2)
    inverter = LatentInverter(g, None, steps=10, perceptual="none", early_stop_patience=patience, early_stop_tol=10.0)
    # step 0 sets the baseline; steps 1 .. patience do not improve on it by 10x, so the slices stop at step patience
    assert inverter.invert(x).steps.tolist() == [patience, patience]


def test_stopped_slices_keep_their_latent() -> None:
    g, _ = double_pair()
    x = generated_images(g, 2)
    constant_lr = {"lr_warmup": 0.0, "lr_rampdown": 0.0, "perceptual": "none"}
    stopping = LatentInverter(g, None, steps=10, early_stop_patience=2, early_stop_tol=10.0, **constant_lr)
    result = stopping.invert(x)
    # nothing ever improves by 10x: both slices stop after the same few steps, far before the 10 asked for
    taken = result.steps.tolist()
    assert taken[0] == taken[1] and 1 <= taken[0] <= 2
    # the latent is the one after `taken` steps: what a run of exactly that many steps returns
    plain = LatentInverter(g, None, steps=taken[0], **constant_lr).invert(x)
    assert_results_close(result, plain)
    longer = LatentInverter(g, None, steps=10, **constant_lr).invert(x)
    assert (longer.ws - result.ws).abs().amax() > 1e-3


def test_stopped_slice_is_held_while_the_others_continue() -> None:
    g, _ = double_pair()
    x = generated_images(g, 2)
    constant_lr = {"lr_warmup": 0.0, "lr_rampdown": 0.0}
    # slice 1's objective keeps falling 20x per step (an image-independent term), slice 0's never improves by 10x
    stopping = LatentInverter(
        g,
        None,
        steps=6,
        perceptual=CountdownDistance([False, True]),
        early_stop_patience=2,
        early_stop_tol=10.0,
        **constant_lr,
    )
    result = stopping.invert(x)
    stop = int(result.steps[0])
    assert 1 <= stop <= 2 and int(result.steps[1]) == 6
    # slice 0 holds the latent of step `stop`; slice 1 goes on as if alone (the term adds no gradient)
    held = LatentInverter(g, None, steps=stop, perceptual="none", **constant_lr).invert(x[:1])
    full = LatentInverter(g, None, steps=6, perceptual="none", **constant_lr).invert(x[1:])
    torch.testing.assert_close(result.ws[:1], held.ws, atol=1e-8, rtol=0)
    torch.testing.assert_close(result.ws[1:], full.ws, atol=1e-8, rtol=0)
    for m, a, b in zip(result.noise, held.noise, full.noise):
        torch.testing.assert_close(m, torch.cat([a, b]), atol=1e-8, rtol=0)


def test_without_early_stopping_every_step_runs() -> None:
    g = make_generator()
    x = generated_images(g, 2)
    result = LatentInverter(g, None, steps=4, perceptual="none", early_stop_tol=10.0).invert(x)
    assert result.steps.tolist() == [4, 4]


# ---------------------------------------------------------------- frozen networks and arguments


def named_parameters(*modules: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(f"{i}.{name}", p) for i, m in enumerate(modules) for name, p in m.named_parameters()]


def test_requires_grad_flags_are_restored() -> None:
    g = make_generator()
    e = make_encoder(g)
    g.mapping.requires_grad_(False)  # a mix of flags, as in encoder training where only some parts train
    e.head.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in named_parameters(g, e)}
    weights = {name: p.detach().clone() for name, p in named_parameters(g, e)}
    x = generated_images(g, 2)
    LatentInverter(g, e, steps=3).invert(x)
    assert {name: p.requires_grad for name, p in named_parameters(g, e)} == flags
    assert any(flags.values()) and not all(flags.values())
    # the networks are not trained by the inversion
    for name, p in named_parameters(g, e):
        assert torch.equal(p, weights[name]), name
        assert p.grad is None, name


def test_requires_grad_flags_are_restored_when_inversion_fails() -> None:
    g = make_generator()
    e = make_encoder(g)
    with pytest.raises(RuntimeError, match="perceptual failed"):
        LatentInverter(g, e, steps=3, perceptual=FailingDistance()).invert(generated_images(g, 1))
    assert all(p.requires_grad for p in g.parameters())
    assert all(p.requires_grad for p in e.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": -1}, "steps"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": -2}, "chunk_size"),
        ({"early_stop_patience": 0}, "early_stop_patience"),
        ({"early_stop_patience": -1}, "early_stop_patience"),
        ({"perceptual": "vgg"}, "perceptual"),
        ({"perceptual": "lpips"}, "lpips"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LatentInverter(make_generator(), None, **kwargs)


@pytest.mark.parametrize("shape", [(2, 2, R, R), (2, 1, 2 * R, 2 * R), (2, 1, R, R // 2), (1, R, R), (1, 1, 1, R, R)])
def test_wrong_image_shape_raises(shape: tuple[int, ...]) -> None:
    inverter = LatentInverter(make_generator(), None, steps=0)
    with pytest.raises(ValueError, match="expected images"):
        inverter.invert(torch.zeros(shape))
