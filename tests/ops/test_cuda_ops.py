"""GPU tests: the compiled ops against the PyTorch reference, in value, gradient and double-backward (R1-style).

The reference runs on the CPU in float64 from the very same (already rounded) inputs: that keeps TF32 convolutions
out of it and makes it the exact answer the CUDA kernels should approach within their dtype's precision.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from monai_semgan.ops import ACTIVATIONS, bias_act, cuda_ops_or_none, setup_kernel, upfirdn2d

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

DEVICE = torch.device("cuda")
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
DTYPE_IDS = ["fp32", "fp16", "bf16", "fp64"]
# relative to the largest magnitude of the expected tensor; float64 runs with float32 FIR taps (the gain folded into
# them in float32), so it matches the float64 reference to about float32 precision
TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 3e-2, torch.float64: 1e-6}


@pytest.fixture(scope="module", autouse=True)
def extension() -> object:
    """The built extension; every test here is about it, so a failed build fails them all (not a silent fallback)."""
    ext = cuda_ops_or_none()
    assert ext is not None, "the CUDA extension did not build or load; see the RuntimeWarning"
    return ext


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    """``|actual - expected| <= tol * (|expected| + max |expected|)``, computed in float64 on the CPU."""
    expected = expected.detach().to("cpu", torch.float64)
    actual = actual.detach().to("cpu", torch.float64)
    assert actual.shape == expected.shape
    scale = max(float(expected.abs().max()), 1e-3)
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


def r1_grads(
    fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], weight: torch.Tensor, acc: torch.dtype
) -> tuple[torch.Tensor, ...]:
    """Output, ``g = d loss / d inputs[0]`` (kept in the graph) and the gradient of ``|g|^2`` w.r.t. every input,
    as in the R1 penalty; ``loss = sum((y * weight)^2)`` so that ``g`` depends on the inputs."""
    y = fn(*inputs)
    loss = (y.to(acc) * weight.to(y.device, acc)).square().sum()
    (g,) = torch.autograd.grad(loss, inputs[0], create_graph=True)
    penalty = g.to(acc).square().sum()
    second = torch.autograd.grad(penalty, inputs)
    return (y, g, *second)


# ------------------------------------------------------------------------------------------------------- upfirdn2d

KERNEL_1D = setup_kernel([1, 3, 3, 1])
KERNEL_1D_ASYM = torch.tensor([1.0, 2.0, 4.0, -1.0]) / 8  # not symmetric; exact in every dtype
KERNEL_2D = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.5, 2.0, -1.0], [4.0, 1.0, -0.5, 0.25]]) / 8  # kh=3, kw=4

UPFIRDN_CASES = [
    pytest.param(1, 1, (2, 1, 2, 1), KERNEL_1D, id="filter-1d"),
    pytest.param(2, 1, (2, 1, 2, 1), KERNEL_1D, id="up2-1d"),
    pytest.param(1, 2, (1, 1, 1, 1), KERNEL_1D, id="down2-1d"),
    pytest.param((2, 1), (1, 2), (3, 0, 1, 2), KERNEL_2D, id="anisotropic-2d"),
    pytest.param(2, 2, (0, 4, 2, 1), KERNEL_1D_ASYM, id="up2-down2-1d-asym"),
    pytest.param(1, 1, (5, 4, 4, 6), KERNEL_2D, id="wide-padding-2d"),  # pad > taps - 1: negative pads in backward
    pytest.param(4, 1, (1, 2, 0, 3), KERNEL_2D, id="up4-2d"),  # up > taps along y: some outputs see one tap row
    pytest.param(1, 3, (1, 2, 0, 1), KERNEL_1D_ASYM, id="down3-1d-asym"),
]


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: object, down: object, pad: object, impl: str) -> torch.Tensor:
    k = kernel.double() if x.dtype == torch.float64 and impl == "ref" else kernel
    return upfirdn2d(x, k, up=up, down=down, padding=pad, gain=1.7, impl=impl)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("up", "down", "pad", "kernel"), UPFIRDN_CASES)
def test_upfirdn2d_forward_backward(
    up: object, down: object, pad: object, kernel: torch.Tensor, dtype: torch.dtype
) -> None:
    """Forward and first derivative (with a random and with a broadcast upstream gradient)."""
    x = _randn(2, 3, 9, 10).to(DEVICE, dtype).requires_grad_()
    x_ref = x.detach().to("cpu", torch.float64).requires_grad_()
    y = _upfirdn(x, kernel, up, down, pad, "cuda")
    y_ref = _upfirdn(x_ref, kernel, up, down, pad, "ref")
    assert y.dtype == dtype and y.is_cuda
    assert_close(y, y_ref, TOL[dtype])
    dy = _randn(*y_ref.shape, seed=1).to(dtype)
    (dx,) = torch.autograd.grad(y, x, dy.to(DEVICE), retain_graph=True)
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy.double(), retain_graph=True)
    assert dx.dtype == dtype
    assert_close(dx, dx_ref, TOL[dtype])
    (dx,) = torch.autograd.grad(y.sum(), x)  # stride-0 upstream gradient
    (dx_ref,) = torch.autograd.grad(y_ref.sum(), x_ref)
    assert_close(dx, dx_ref, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("up", "down", "pad", "kernel"), UPFIRDN_CASES)
def test_upfirdn2d_double_backward(
    up: object, down: object, pad: object, kernel: torch.Tensor, dtype: torch.dtype
) -> None:
    """Gradient of a gradient-norm penalty (R1): create_graph through the CUDA backward, then backward again."""
    x = _randn(2, 3, 9, 10).to(DEVICE, dtype).requires_grad_()
    x_ref = x.detach().to("cpu", torch.float64).requires_grad_()
    out_shape = _upfirdn(x_ref.detach(), kernel, up, down, pad, "ref").shape
    weight = _randn(*out_shape, seed=2)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    got = r1_grads(lambda t: _upfirdn(t, kernel, up, down, pad, "cuda"), (x,), weight, acc)
    want = r1_grads(lambda t: _upfirdn(t, kernel, up, down, pad, "ref"), (x_ref,), weight, torch.float64)
    tol = TOL[dtype] if dtype == torch.float32 else 2 * TOL[dtype]
    for name, a, b in zip(("y", "g", "dpenalty/dx"), got, want):
        assert a.is_cuda, name
        assert_close(a, b, tol)


@pytest.mark.parametrize(("up", "down", "pad", "kernel"), UPFIRDN_CASES)
def test_upfirdn2d_gradcheck(up: object, down: object, pad: object, kernel: torch.Tensor) -> None:
    """Float64 first and second derivatives of the CUDA path against finite differences."""
    x = _randn(1, 2, 5, 6, seed=3).to(DEVICE).requires_grad_()

    def fn(t: torch.Tensor) -> torch.Tensor:
        return _upfirdn(t, kernel, up, down, pad, "cuda")

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


LAYOUTS = ["transposed", "sliced", "channels_last"]


def in_layout(values: torch.Tensor, layout: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A CUDA leaf holding ``values`` [N, C, H, W] in a permuted-dense, a sliced (non-dense) or channels-last layout."""
    n, c, h, w = values.shape
    if layout == "transposed":
        out = torch.empty(n, c, w, h, device=DEVICE, dtype=dtype).transpose(2, 3)
    elif layout == "sliced":
        out = torch.empty(n, 2 * c, h + 3, 2 * w, device=DEVICE, dtype=dtype)[:, ::2, 1 : h + 1, ::2]
    else:
        out = torch.empty(n, c, h, w, device=DEVICE, dtype=dtype, memory_format=torch.channels_last)
    out.copy_(values)
    assert not out.is_contiguous()
    return out.requires_grad_()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("up", "down", "pad", "kernel"), UPFIRDN_CASES[1:5])
def test_upfirdn2d_layouts(up: object, down: object, pad: object, kernel: torch.Tensor, layout: str) -> None:
    """Non-contiguous and channels-last inputs and upstream gradients (float32): forward and first derivative."""
    values = _randn(2, 3, 9, 10, seed=4)
    x = in_layout(values, layout)
    x_ref = values.float().double().requires_grad_()  # the float32-rounded values the CUDA op sees
    y = _upfirdn(x, kernel, up, down, pad, "cuda")
    y_ref = _upfirdn(x_ref, kernel, up, down, pad, "ref")
    assert_close(y, y_ref, TOL[torch.float32])
    dy = _randn(*y_ref.shape, seed=7)
    (dx,) = torch.autograd.grad(y, x, in_layout(dy, layout).detach())
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy)
    assert_close(dx, dx_ref, TOL[torch.float32])


def test_upfirdn2d_default_impl_is_cuda() -> None:
    """``impl=None`` on a CUDA tensor takes the compiled path; ``impl='ref'`` on it gives the same numbers."""
    x = _randn(1, 2, 8, 8).to(DEVICE, torch.float32).requires_grad_()
    y = upfirdn2d(x, KERNEL_1D, up=2, padding=(2, 1, 2, 1))
    assert type(y.grad_fn).__name__ == "_Upfirdn2dFunctionBackward"
    assert y.grad_fn.config[-1] is True  # the node (autograd ctx) records that the CUDA kernel ran
    x64 = x.detach().double()
    torch.testing.assert_close(
        upfirdn2d(x64, KERNEL_1D, up=2, padding=(2, 1, 2, 1)),
        upfirdn2d(x64, KERNEL_1D.double(), up=2, padding=(2, 1, 2, 1), impl="ref"),
        rtol=1e-6,
        atol=1e-6,
    )


# -------------------------------------------------------------------------------------------------------- bias_act

BIAS_ACT_CASES = [
    pytest.param(act, clamp, shape, dim, id=f"{act}-clamp{clamp}-{len(shape)}d-dim{dim}")
    for act in ("linear", "relu", "lrelu")
    for clamp in (None, 1.0)
    for shape, dim in (((4, 8, 6, 5), 1), ((16, 32), 1), ((4, 6, 10), -1))
]


def _bias_act_inputs(
    make_preactivation: Callable[..., torch.Tensor], act: str, clamp: float | None, shape: tuple[int, ...], dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 CPU ``x`` and ``bias`` whose sum stays clear of the kinks of ``act`` and of the clamp."""
    pre = make_preactivation(shape, act=act, gain=ACTIVATIONS[act][1], clamp=clamp, seed=len(shape))
    bias = _randn(shape[dim], seed=8) * 0.5
    bshape = [1] * len(shape)
    bshape[dim] = -1
    return pre - bias.reshape(bshape), bias


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("act", "clamp", "shape", "dim"), BIAS_ACT_CASES)
def test_bias_act_forward_backward(
    act: str,
    clamp: float | None,
    shape: tuple[int, ...],
    dim: int,
    dtype: torch.dtype,
    make_preactivation: Callable[..., torch.Tensor],
) -> None:
    """Forward and gradients w.r.t. ``x`` and ``bias``."""
    x64, b64 = _bias_act_inputs(make_preactivation, act, clamp, shape, dim)
    x = x64.to(DEVICE, dtype).requires_grad_()
    b = b64.to(DEVICE, dtype).requires_grad_()
    x_ref = x.detach().to("cpu", torch.float64).requires_grad_()
    b_ref = b.detach().to("cpu", torch.float64).requires_grad_()
    y = bias_act(x, b, act=act, clamp=clamp, dim=dim, impl="cuda")
    y_ref = bias_act(x_ref, b_ref, act=act, clamp=clamp, dim=dim, impl="ref")
    assert y.dtype == dtype and y.is_cuda
    assert_close(y, y_ref, TOL[dtype])
    dy = _randn(*shape, seed=9).to(dtype)
    dx, db = torch.autograd.grad(y, (x, b), dy.to(DEVICE))
    dx_ref, db_ref = torch.autograd.grad(y_ref, (x_ref, b_ref), dy.double())
    assert dx.dtype == dtype and db.dtype == dtype
    assert_close(dx, dx_ref, TOL[dtype])
    assert_close(db, db_ref, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("act", "clamp", "shape", "dim"), BIAS_ACT_CASES)
def test_bias_act_double_backward(
    act: str,
    clamp: float | None,
    shape: tuple[int, ...],
    dim: int,
    dtype: torch.dtype,
    make_preactivation: Callable[..., torch.Tensor],
) -> None:
    """Gradient of a gradient-norm penalty w.r.t. ``x`` and ``bias`` (R1 through a biased activation)."""
    x64, b64 = _bias_act_inputs(make_preactivation, act, clamp, shape, dim)
    x = x64.to(DEVICE, dtype).requires_grad_()
    b = b64.to(DEVICE, dtype).requires_grad_()
    x_ref = x.detach().to("cpu", torch.float64).requires_grad_()
    b_ref = b.detach().to("cpu", torch.float64).requires_grad_()
    weight = _randn(*shape, seed=10)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    got = r1_grads(lambda t, u: bias_act(t, u, act=act, clamp=clamp, dim=dim, impl="cuda"), (x, b), weight, acc)
    want = r1_grads(
        lambda t, u: bias_act(t, u, act=act, clamp=clamp, dim=dim, impl="ref"), (x_ref, b_ref), weight, torch.float64
    )
    tol = TOL[dtype] if dtype == torch.float32 else 2 * TOL[dtype]
    for name, a, c in zip(("y", "g", "dpenalty/dx", "dpenalty/dbias"), got, want):
        assert a.is_cuda, name
        assert_close(a, c, tol)


@pytest.mark.parametrize(("act", "clamp", "shape", "dim"), BIAS_ACT_CASES[::2])
def test_bias_act_gradcheck(
    act: str, clamp: float | None, shape: tuple[int, ...], dim: int, make_preactivation: Callable[..., torch.Tensor]
) -> None:
    """Float64 first and second derivatives of the CUDA path against finite differences."""
    small = tuple(min(s, 4) for s in shape)
    x64, b64 = _bias_act_inputs(make_preactivation, act, clamp, small, dim)
    x = x64.to(DEVICE).requires_grad_()
    b = b64.to(DEVICE).requires_grad_()

    def fn(t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return bias_act(t, u, act=act, clamp=clamp, dim=dim, impl="cuda")

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_layouts(act: str, layout: str, dim: int, make_preactivation: Callable[..., torch.Tensor]) -> None:
    """Permuted-dense (used in place), sliced (copied) and channels-last inputs (float32): forward and gradients.

    A bias along ``dim`` checks the kernel's channel index, computed from the stride of ``dim`` in memory order.
    """
    shape = (2, 3, 9, 10)
    values, b64 = _bias_act_inputs(make_preactivation, act, 1.0, shape, dim)
    x = in_layout(values, layout)
    b = b64.to(DEVICE, torch.float32).requires_grad_()
    x_ref = values.float().double().requires_grad_()  # the float32-rounded values the CUDA op sees
    b_ref = b64.float().double().requires_grad_()
    y = bias_act(x, b, act=act, clamp=1.0, dim=dim, impl="cuda")
    y_ref = bias_act(x_ref, b_ref, act=act, clamp=1.0, dim=dim, impl="ref")
    assert_close(y, y_ref, TOL[torch.float32])
    dy = _randn(*shape, seed=12)
    dx, db = torch.autograd.grad(y, (x, b), dy.to(DEVICE, torch.float32))
    dx_ref, db_ref = torch.autograd.grad(y_ref, (x_ref, b_ref), dy)
    assert_close(dx, dx_ref, TOL[torch.float32])
    assert_close(db, db_ref, TOL[torch.float32])


def test_bias_act_default_impl_is_cuda() -> None:
    """``impl=None`` on a CUDA tensor takes the compiled path."""
    x = _randn(2, 3, 4, 4).to(DEVICE, torch.float32).requires_grad_()
    y = bias_act(x, torch.zeros(3, device=DEVICE), act="lrelu")
    assert type(y.grad_fn).__name__ == "_BiasActCudaBackward"


@pytest.mark.parametrize(("act", "gain", "alpha"), [("relu", -1.5, None), ("lrelu", -1.0, 0.2), ("lrelu", 1.0, -0.3)])
def test_bias_act_sign_changing_activation(act: str, gain: float, alpha: float | None) -> None:
    """The CUDA backward reads the slope off the sign of the output, which a negative gain or alpha breaks: those
    fall back to the reference (right gradients) with ``impl=None`` and are refused with ``impl='cuda'``."""
    x64 = _randn(3, 4, 5, 5, seed=13)
    b64 = _randn(4, seed=14)
    x = x64.to(DEVICE).requires_grad_()
    b = b64.to(DEVICE).requires_grad_()
    x_ref = x64.clone().requires_grad_()
    b_ref = b64.clone().requires_grad_()
    y = bias_act(x, b, act=act, gain=gain, alpha=alpha)
    y_ref = bias_act(x_ref, b_ref, act=act, gain=gain, alpha=alpha, impl="ref")
    dy = _randn(3, 4, 5, 5, seed=15)
    got = torch.autograd.grad(y, (x, b), dy.to(DEVICE))
    want = torch.autograd.grad(y_ref, (x_ref, b_ref), dy)
    for a, c in zip((y, *got), (y_ref, *want)):
        assert_close(a, c, 1e-10)
    with pytest.raises(ValueError, match="gain"):
        bias_act(x, b, act=act, gain=gain, alpha=alpha, impl="cuda")
