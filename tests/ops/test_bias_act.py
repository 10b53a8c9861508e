"""CPU tests of ``bias_act``: the reference against the plain formula, layouts, dtypes, gradients, argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from monai_semgan.ops import ACTIVATIONS, bias_act


def expected_bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    act: str,
    alpha: float,
    gain: float,
    clamp: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """``clamp(act(x + bias) * gain)`` spelled out with the plain torch functions."""
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.reshape(shape)
    if act == "relu":
        x = F.relu(x)
    elif act == "lrelu":
        x = F.leaky_relu(x, alpha)
    x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


SHAPES_AND_DIMS = [
    pytest.param((5, 6), 1, id="2d-dim1"),
    pytest.param((5, 6), -1, id="2d-dim-1"),
    pytest.param((5, 6), 0, id="2d-dim0"),
    pytest.param((2, 3, 4, 5), 1, id="4d-dim1"),
    pytest.param((2, 3, 4, 5), -1, id="4d-dim-1"),
]


@pytest.mark.parametrize("clamp", [None, 0.8])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize(("shape", "dim"), SHAPES_AND_DIMS)
@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_matches_formula(act: str, shape: tuple[int, ...], dim: int, with_bias: bool, clamp: float | None) -> None:
    """Default alpha/gain per activation, bias along ``dim``, clamping."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    bias = torch.randn(shape[dim], generator=gen) if with_bias else None
    y = bias_act(x, bias, act=act, clamp=clamp, dim=dim)
    default_gain = 1.0 if act == "linear" else math.sqrt(2.0)
    torch.testing.assert_close(y, expected_bias_act(x, bias, act, 0.2, default_gain, clamp, dim % len(shape)))
    assert y.shape == x.shape and y.dtype == x.dtype
    if clamp is not None:
        assert y.abs().max() <= clamp


def test_defaults_against_torch() -> None:
    """``relu`` is ``sqrt(2) * F.relu``, ``lrelu`` is ``sqrt(2) * F.leaky_relu(., 0.2)``, ``linear`` is ``x + b``."""
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    b = torch.randn(3, generator=torch.Generator().manual_seed(2))
    xb = x + b[None, :, None, None]
    assert ACTIVATIONS["relu"][1] == pytest.approx(math.sqrt(2.0))
    torch.testing.assert_close(bias_act(x, b, act="relu"), F.relu(xb) * math.sqrt(2.0))
    torch.testing.assert_close(bias_act(x, b, act="lrelu"), F.leaky_relu(xb, 0.2) * math.sqrt(2.0))
    torch.testing.assert_close(bias_act(x, b), xb)
    torch.testing.assert_close(bias_act(x), x)
    torch.testing.assert_close(bias_act(x, act="relu", gain=1.0), F.relu(x))


@pytest.mark.parametrize("gain", [0.5, 1.0, 3.0, 0.0, -1.5])
@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_explicit_alpha_and_gain(act: str, gain: float) -> None:
    """Explicit ``alpha`` and ``gain``, including zero and negative gains (not positively homogeneous)."""
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(3))
    b = torch.randn(4, generator=torch.Generator().manual_seed(4))
    y = bias_act(x, b, act=act, alpha=0.1, gain=gain, clamp=2.0)
    torch.testing.assert_close(y, expected_bias_act(x, b, act, 0.1, gain, 2.0))


def test_clamp_zero() -> None:
    """``clamp=0`` gives zeros."""
    x = torch.randn(2, 3)
    assert torch.equal(bias_act(x, torch.ones(3), act="lrelu", clamp=0.0), torch.zeros(2, 3))


def test_memory_layouts() -> None:
    """Channels-last, transposed and sliced inputs give the same numbers as their contiguous copies."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 6, 5, generator=gen)
    b = torch.randn(4, generator=gen)
    expected = bias_act(x, b, act="lrelu", clamp=1.0)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    y = bias_act(channels_last, b, act="lrelu", clamp=1.0)
    torch.testing.assert_close(y, expected)
    transposed = x.transpose(0, 3).contiguous().transpose(0, 3)
    assert not transposed.is_contiguous()
    torch.testing.assert_close(bias_act(transposed, b, act="lrelu", clamp=1.0), expected)
    sliced = torch.randn(2, 8, 6, 10, generator=gen)[:, ::2, :, 1::2]
    torch.testing.assert_close(bias_act(sliced, b, act="relu"), bias_act(sliced.contiguous(), b, act="relu"))
    torch.testing.assert_close(bias_act(sliced, b, act="relu", dim=1), expected_bias_act(sliced, b, "relu", 0, 2**0.5))
    torch.testing.assert_close(bias_act(x, b, act="lrelu", clamp=1.0, impl="ref"), expected)


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_output_dtype_follows_x(act: str, dtype: torch.dtype) -> None:
    """The output has the dtype of ``x`` even when the bias is float32 (a parameter under autocast)."""
    x = torch.randn(2, 3, 4, 4).to(dtype)
    b = torch.randn(3)
    y = bias_act(x, b, act=act)
    assert y.dtype == dtype
    tol = {torch.float16: 1e-2, torch.bfloat16: 3e-2, torch.float64: 1e-6}[dtype]
    expected = expected_bias_act(x.double(), b.double(), act, 0.2, ACTIVATIONS[act][1])
    torch.testing.assert_close(y.double(), expected, rtol=tol, atol=tol)


GRAD_CASES = [
    pytest.param("linear", (3, 4), 1, None, id="linear-2d"),
    pytest.param("relu", (2, 3, 4, 5), 1, None, id="relu-4d"),
    pytest.param("lrelu", (2, 3, 4, 5), 1, 1.0, id="lrelu-4d-clamp"),
    pytest.param("lrelu", (2, 3, 5), -1, None, id="lrelu-3d-dim-1"),
    pytest.param("relu", (4, 6), -1, 0.9, id="relu-2d-dim-1-clamp"),
    pytest.param("linear", (2, 3, 4, 5), 1, 0.7, id="linear-4d-clamp"),
]


@pytest.mark.parametrize(("act", "shape", "dim", "clamp"), GRAD_CASES)
def test_gradcheck(
    act: str, shape: tuple[int, ...], dim: int, clamp: float | None, make_preactivation: Callable[..., torch.Tensor]
) -> None:
    """First and second derivatives w.r.t. ``x`` and ``bias`` agree with finite differences in float64."""
    gain = ACTIVATIONS[act][1]
    pre = make_preactivation(shape, act=act, gain=gain, clamp=clamp)
    bias = torch.linspace(-0.5, 0.5, shape[dim], dtype=torch.float64)
    bshape = [1] * len(shape)
    bshape[dim] = -1
    x = (pre - bias.reshape(bshape)).requires_grad_()
    bias.requires_grad_()

    def fn(inp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return bias_act(inp, b, act=act, clamp=clamp, dim=dim)

    assert torch.autograd.gradcheck(fn, (x, bias))
    assert torch.autograd.gradgradcheck(fn, (x, bias))


@pytest.mark.parametrize(("act", "alpha", "gain"), [("lrelu", -0.3, 1.0), ("relu", -0.3, 2.0), ("lrelu", 0.2, -1.5)])
def test_gradcheck_sign_changing(
    act: str, alpha: float, gain: float, make_preactivation: Callable[..., torch.Tensor]
) -> None:
    """A negative slope or gain (not positively homogeneous) still has first and second derivatives."""
    x = make_preactivation((3, 4, 5), act="linear", seed=1).requires_grad_()
    bias = torch.linspace(-0.05, 0.05, 4, dtype=torch.float64, requires_grad=True)

    def fn(inp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return bias_act(inp, b, act=act, alpha=alpha, gain=gain)

    torch.testing.assert_close(fn(x, bias), expected_bias_act(x, bias, act, alpha, gain))
    assert torch.autograd.gradcheck(fn, (x, bias))
    assert torch.autograd.gradgradcheck(fn, (x, bias))


def test_gradient_values() -> None:
    """The slope is ``gain`` above zero, ``gain * alpha`` (lrelu) or 0 (relu) below, and 0 where clamped."""
    x = torch.tensor([-2.0, -0.5, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(bias_act(x, act="lrelu", alpha=0.1, gain=2.0, clamp=4.0, dim=0).sum(), x)
    torch.testing.assert_close(grad, torch.tensor([0.2, 0.2, 2.0, 0.0], dtype=torch.float64))
    (grad,) = torch.autograd.grad(bias_act(x, act="relu", gain=2.0, dim=0).sum(), x)
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 2.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"bias": torch.zeros(4)}, "bias", id="bias-wrong-length"),
        pytest.param({"bias": torch.zeros(1, 3)}, "bias", id="bias-wrong-rank"),
        pytest.param({"bias": torch.zeros(())}, "bias", id="bias-scalar"),
        pytest.param({"act": "gelu"}, "act", id="act-unknown"),
        pytest.param({"dim": 4}, "dim", id="dim-too-large"),
        pytest.param({"dim": -5}, "dim", id="dim-too-small"),
        pytest.param({"clamp": -1.0}, "clamp", id="clamp-negative"),
        pytest.param({"impl": "triton"}, "impl", id="impl-unknown"),
        pytest.param({"impl": "cuda"}, "impl", id="impl-cuda-on-cpu"),
        pytest.param({"x": torch.tensor(1.0), "bias": None}, r"\bx\b", id="x-scalar"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    """Each bad argument raises ValueError naming it."""
    args: dict[str, object] = {"x": torch.zeros(2, 3, 4, 5), "bias": torch.zeros(3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bias_act(**args)  # type: ignore[arg-type]
