"""The CUDA kernels' arithmetic, checked on the CPU (no GPU needed; runs in CI).

The sources in ``cuda_ops/`` (kernels and bindings, one copy) are compiled for the host with
``cuda_ops/host_emulation.h``: every launch runs its grid block after block, thread after thread, with the real
launch geometry (256 threads a block). ``cuda_ops_or_none`` is then pointed at that module, so the CUDA path's
autograd Functions (forward; backward as another call of the same kernel, with negative padding for upfirdn2d;
double backward) run on CPU tensors as they do on a GPU, and are compared with the PyTorch reference in float64.

Uninitialised memory is filled with NaN here (``torch.use_deterministic_algorithms``), so an output element that a
kernel never writes fails a comparison; ``SEMGAN_HOST_MAX_GRID`` caps the grid so the grid-stride loops go round.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from monai_semgan.ops import ACTIVATIONS, bias_act, setup_kernel

_upfirdn2d_module = importlib.import_module("monai_semgan.ops.upfirdn2d")
_bias_act_module = importlib.import_module("monai_semgan.ops.bias_act")

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp64", "fp32", "fp16", "bf16"]
# relative to the largest magnitude of the expected tensor (and elementwise): one rounding of the output, plus the
# float32 accumulation of the kernels for the half types
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.fixture(scope="module", autouse=True)
def cuda_path_on_host(host_ops: ModuleType) -> Iterator[ModuleType]:
    """Route the ops' CUDA path to the host build; make uninitialised memory NaN."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_upfirdn2d_module, "cuda_ops_or_none", lambda: host_ops)
        mp.setattr(_bias_act_module, "cuda_ops_or_none", lambda: host_ops)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = True
        try:
            yield host_ops
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.utils.deterministic.fill_uninitialized_memory = fill


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, msg: str = "") -> None:
    """``|actual - expected| <= tol * (|expected| + max |expected|)`` in float64; NaN only where expected."""
    expected = expected.detach().double()
    actual = actual.detach().double()
    assert actual.shape == expected.shape, msg
    finite = expected[expected.isfinite()]
    scale = max(float(finite.abs().max()) if finite.numel() else 0.0, 1e-3)
    torch.testing.assert_close(
        actual, expected, rtol=tol, atol=tol * scale, equal_nan=True, msg=lambda m: f"{msg}\n{m}"
    )


def r1_grads(
    fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], weight: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Output, ``g = d loss / d inputs[0]`` (kept in the graph) and the gradient of ``|g|^2`` w.r.t. every input,
    as in the R1 penalty, with ``loss = sum((y * weight)^2)`` so that ``g`` depends on the inputs."""
    y = fn(*inputs)
    loss = (y.double() * weight).square().sum()
    (g,) = torch.autograd.grad(loss, inputs[0], create_graph=True)
    second = torch.autograd.grad(g.double().square().sum(), inputs)
    return (y, g, *second)


# ------------------------------------------------------------------------------------------------------- upfirdn2d


def host_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: object = 1, down: object = 1, pad: object = 0):
    """The CUDA path of ``upfirdn2d`` (its autograd Function, kernel calls included) on a CPU tensor."""
    up_, down_ = _upfirdn2d_module._pair(up, "up"), _upfirdn2d_module._pair(down, "down")
    pad_ = _upfirdn2d_module._parse_padding(pad)
    return _upfirdn2d_module._Upfirdn2dFunction.apply(x, kernel.float(), up_, down_, pad_, True)


def ref_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: object = 1, down: object = 1, pad: object = 0):
    """The PyTorch reference (negative padding crops) in the dtype of ``x``."""
    up_, down_ = _upfirdn2d_module._pair(up, "up"), _upfirdn2d_module._pair(down, "down")
    pad_ = _upfirdn2d_module._parse_padding(pad)
    k2d = kernel if kernel.ndim == 2 else torch.outer(kernel, kernel)
    return _upfirdn2d_module._upfirdn2d_ref_2d(x, k2d.to(x.dtype), up_, down_, pad_)


def definition_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: tuple, down: tuple, pad: tuple) -> torch.Tensor:
    """The operation spelled out: zero insertion, padding (negative crops), correlation, decimation."""
    n, c, h, w = x.shape
    k2d = (kernel if kernel.ndim == 2 else torch.outer(kernel, kernel)).to(x.dtype)
    stuffed = x.new_zeros(n, c, h * up[1], w * up[0])
    stuffed[:, :, :: up[1], :: up[0]] = x
    padded = F.pad(stuffed, list(pad))
    y = F.conv2d(padded.reshape(n * c, 1, *padded.shape[2:]), k2d[None, None])
    return y.reshape(n, c, *y.shape[2:])[:, :, :: down[1], :: down[0]]


def _taps(count: int, seed: int) -> torch.Tensor:
    """Asymmetric taps (a symmetric kernel would hide a flip), exactly representable in every dtype."""
    return (torch.randint(-8, 9, (count,), generator=torch.Generator().manual_seed(seed)).float() + 0.5) / 8


KERNELS = {f"1d-{n}": _taps(n, n) for n in range(1, 7)} | {
    "2d-3x4": _taps(12, 20).reshape(3, 4),
    "2d-5x2": _taps(10, 21).reshape(5, 2),
    "2d-1x3": _taps(3, 22).reshape(1, 3),
}


def _paddings(kernel: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Zero, the size-keeping split of ``taps - 1``, wide positive, and negative (cropping) paddings."""
    kh, kw = (kernel.shape[0],) * 2 if kernel.ndim == 1 else tuple(kernel.shape)
    return [
        (0, 0, 0, 0),
        (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2),
        (5, 3, 2, 6),
        (-1, -2, -2, 0),
        (-3, 2, 1, -1),
    ]


FACTORS = [pytest.param(up, down, id=f"up{up}-down{down}") for up in (1, 2, 4) for down in (1, 2, 4)] + [
    pytest.param((2, 1), (1, 4), id="up2x1-down1x4"),
    pytest.param((4, 2), (2, 1), id="up4x2-down2x1"),
    pytest.param((1, 4), (4, 2), id="up1x4-down4x2"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(("up", "down"), FACTORS)
def test_upfirdn2d_forward_across_parameters(up: object, down: object, dtype: torch.dtype) -> None:
    """Every filter size 1-6 (1-D) and three 2-D shapes, against the reference and the spelled-out definition, with
    zero, positive and negative padding, and an input of odd height and even width."""
    x64 = _randn(2, 3, 9, 10, seed=1)
    x = x64.to(dtype)
    up_, down_ = _upfirdn2d_module._pair(up, "up"), _upfirdn2d_module._pair(down, "down")
    checked = 0
    for name, kernel in KERNELS.items():
        for pad in _paddings(kernel):
            kh, kw = (kernel.shape[0],) * 2 if kernel.ndim == 1 else tuple(kernel.shape)
            out_w = (10 * up_[0] + pad[0] + pad[1] - kw) // down_[0] + 1
            out_h = (9 * up_[1] + pad[2] + pad[3] - kh) // down_[1] + 1
            if min(out_w, out_h) < 1:
                continue
            msg = f"kernel {name}, padding {pad}"
            y = host_upfirdn2d(x, kernel, up, down, pad)
            assert y.dtype == dtype and y.shape == (2, 3, out_h, out_w), msg
            expected = ref_upfirdn2d(x.double(), kernel, up, down, pad)
            assert_close(y, expected, TOL[dtype], msg)
            assert_close(expected, definition_upfirdn2d(x.double(), kernel, up_, down_, pad), 1e-12, msg)
            checked += 1
    assert checked >= 40


def _network_kernel() -> torch.Tensor:
    return setup_kernel([1, 3, 3, 1])


# (up, down, padding, gain, kernel) as the networks call them, and some beyond
UPFIRDN_CASES = [
    pytest.param(2, 1, (2, 1, 2, 1), 4.0, "net", id="upsample2d-skip"),
    pytest.param(1, 1, (1, 1, 1, 1), 4.0, "net", id="blur-after-transposed-conv"),
    pytest.param(1, 1, (2, 2, 2, 2), 1.0, "net", id="blur-before-strided-conv"),
    pytest.param(1, 2, (1, 1, 1, 1), 1.0, "net", id="downsample2d"),
    pytest.param(4, 1, (3, 2, 3, 2), 16.0, "net", id="upsample2d-x4"),
    pytest.param((2, 1), (1, 2), (3, 0, 1, 2), 1.0, "2d-3x4", id="anisotropic-2d"),
    pytest.param(2, 2, (0, 4, 2, 1), 1.0, "1d-4", id="up2-down2-asym"),
    pytest.param(1, 1, (5, 4, 4, 6), 1.0, "2d-3x4", id="wide-padding"),  # negative padding in the backward
    pytest.param(1, 4, (1, 2, 0, 3), 1.0, "1d-5", id="down4-odd-taps"),
]


def _case_kernel(name: str, gain: float) -> torch.Tensor:
    kernel = _network_kernel() if name == "net" else KERNELS[name]
    return kernel * (gain**0.5 if kernel.ndim == 1 else gain)  # as upfirdn2d folds its gain into the kernel


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("up", "down", "pad", "gain", "kernel_name"), UPFIRDN_CASES)
def test_upfirdn2d_forward_backward_double_backward(
    up: object, down: object, pad: tuple, gain: float, kernel_name: str, dtype: torch.dtype
) -> None:
    """Forward, first derivative (random and broadcast upstream gradients) and the R1-style gradient of a gradient
    norm, in every dtype, against the reference run in float64 on the same rounded inputs."""
    kernel = _case_kernel(kernel_name, gain)
    x = _randn(2, 3, 9, 10, seed=2).to(dtype).requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    y = host_upfirdn2d(x, kernel, up, down, pad)
    y_ref = ref_upfirdn2d(x_ref, kernel, up, down, pad)
    assert y.dtype == dtype
    assert_close(y, y_ref, TOL[dtype], "y")
    dy = _randn(*y_ref.shape, seed=3).to(dtype)
    (dx,) = torch.autograd.grad(y, x, dy, retain_graph=True)
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy.double(), retain_graph=True)
    assert dx.dtype == dtype
    assert_close(dx, dx_ref, TOL[dtype], "dx")
    (dx,) = torch.autograd.grad(y.sum(), x)  # a stride-0 upstream gradient
    (dx_ref,) = torch.autograd.grad(y_ref.sum(), x_ref)
    assert_close(dx, dx_ref, TOL[dtype], "dx of sum")
    weight = _randn(*y_ref.shape, seed=4) / gain  # keeps the second derivative inside float16's range
    got = r1_grads(lambda t: host_upfirdn2d(t, kernel, up, down, pad), (x,), weight)
    want = r1_grads(lambda t: ref_upfirdn2d(t, kernel, up, down, pad), (x_ref,), weight)
    for name, a, b in zip(("y", "g", "dpenalty/dx"), got, want):
        assert_close(a, b, 2 * TOL[dtype], name)  # g is rounded to dtype once more


@pytest.mark.parametrize(("up", "down", "pad", "gain", "kernel_name"), UPFIRDN_CASES[::2])
def test_upfirdn2d_gradcheck(up: object, down: object, pad: tuple, gain: float, kernel_name: str) -> None:
    """Float64 first and second derivatives of the CUDA path against finite differences."""
    kernel = _case_kernel(kernel_name, gain)
    x = _randn(1, 2, 5, 6, seed=5).requires_grad_()

    def fn(t: torch.Tensor) -> torch.Tensor:
        return host_upfirdn2d(t, kernel, up, down, pad)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("max_grid", [None, "1", "3"], ids=["full-grid", "grid-1", "grid-3"])
@pytest.mark.parametrize("shape", [(1, 1, 9, 10), (3, 5, 9, 10), (4, 8, 17, 19), (0, 2, 9, 10)], ids=str)
def test_upfirdn2d_batch_channels_and_grid_stride(
    shape: tuple[int, ...], max_grid: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch and channel counts, several blocks (4 x 8 x 34 x 38 outputs need 162), and a grid capped to 1 or 3
    blocks so that each thread strides over many elements; an empty batch launches nothing."""
    if max_grid is not None:
        monkeypatch.setenv("SEMGAN_HOST_MAX_GRID", max_grid)
    kernel = _case_kernel("net", 4.0)
    x = _randn(*shape, seed=6).float().requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    y = host_upfirdn2d(x, kernel, 2, 1, (2, 1, 2, 1))
    y_ref = ref_upfirdn2d(x_ref, kernel, 2, 1, (2, 1, 2, 1))
    assert_close(y, y_ref, TOL[torch.float32])
    dy = _randn(*y.shape, seed=7)
    (dx,) = torch.autograd.grad(y, x, dy.float())
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy)
    assert_close(dx, dx_ref, TOL[torch.float32])


LAYOUTS = ["transposed", "sliced", "channels_last", "expanded"]


def in_layout(values: torch.Tensor, layout: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``values`` [N, C, H, W] held in a permuted-dense, a sliced (non-dense), a channels-last or a batch-broadcast
    (stride 0) layout."""
    n, c, h, w = values.shape
    if layout == "transposed":
        out = torch.empty(n, c, w, h, dtype=dtype).transpose(2, 3)
    elif layout == "sliced":
        out = torch.empty(n, 2 * c, h + 3, 2 * w, dtype=dtype)[:, ::2, 1 : h + 1, ::2]
    elif layout == "channels_last":
        out = torch.empty(n, c, h, w, dtype=dtype, memory_format=torch.channels_last)
    else:
        return values[:1].to(dtype).expand(n, c, h, w)
    out.copy_(values)
    assert not out.is_contiguous()
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("up", "down", "pad", "gain", "kernel_name"), UPFIRDN_CASES[::2])
def test_upfirdn2d_layouts(up: object, down: object, pad: tuple, gain: float, kernel_name: str, layout: str) -> None:
    """Non-contiguous inputs and upstream gradients: the kernel reads any strides and writes the input's suggested
    memory format (channels_last stays channels_last)."""
    kernel = _case_kernel(kernel_name, gain)
    values = _randn(2, 3, 9, 10, seed=8)
    x = in_layout(values, layout).requires_grad_()
    x_ref = x.detach().double().contiguous().requires_grad_()
    y = host_upfirdn2d(x, kernel, up, down, pad)
    y_ref = ref_upfirdn2d(x_ref, kernel, up, down, pad)
    assert_close(y, y_ref, TOL[torch.float32])
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
    dy = _randn(*y_ref.shape, seed=9)
    dy_layout = in_layout(dy, "sliced" if layout == "expanded" else layout)
    (dx,) = torch.autograd.grad(y, x, dy_layout)
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy_layout.double())
    assert_close(dx, dx_ref, TOL[torch.float32])


def test_upfirdn2d_binding_checks(host_ops: ModuleType) -> None:
    """The binding refuses what the kernel cannot do, with a message."""
    x = torch.randn(1, 1, 4, 4)
    k = torch.ones(2, 2)
    with pytest.raises(RuntimeError, match="up and down"):
        host_ops.upfirdn2d(x, k, 0, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="empty output"):
        host_ops.upfirdn2d(x, k, 1, 1, 1, 1, -2, -2, 0, 0)
    with pytest.raises(RuntimeError, match="float32"):
        host_ops.upfirdn2d(x, k.double(), 1, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="support float32"):
        host_ops.upfirdn2d(x.int(), k, 1, 1, 1, 1, 0, 0, 0, 0)


# -------------------------------------------------------------------------------------------------------- bias_act


def host_bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """The CUDA path of ``bias_act`` (its autograd Functions, kernel calls included) on a CPU tensor, with the
    defaults of :func:`bias_act`."""
    default_alpha, default_gain, code = ACTIVATIONS[act]
    alpha = float(default_alpha if alpha is None else alpha)
    gain = float(default_gain if gain is None else gain)
    bias = bias.to(x.dtype) if bias is not None else None
    return _bias_act_module._BiasActCuda.apply(x, bias, dim % x.ndim, code, alpha, gain, clamp)


SHAPES_AND_DIMS = [((7,), 0), ((5, 6), 0), ((5, 6), 1), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), 3)]
SHAPES_AND_DIMS += [((2, 3, 2, 4, 3), 1), ((2, 3, 2, 4, 3), 4)]


def _away_from_clamp(pre: torch.Tensor, clamp: float | None, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the elements whose output before clamping lies inside ``(-clamp, clamp)`` and outside it, each by
    a relative ``margin`` (at the clamp itself torch's clamp passes the gradient and the kernel does not, and a
    rounded output may land on either side)."""
    if clamp is None:
        return torch.ones_like(pre, dtype=torch.bool), torch.zeros_like(pre, dtype=torch.bool)
    return pre.abs() < clamp * (1 - margin), pre.abs() > clamp * (1 + margin)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_bias_act_forward_and_grad_kernel_across_parameters(act: str, dtype: torch.dtype, host_ops: ModuleType) -> None:
    """Every rank 1-5 with the bias along each kind of dimension (first, channel, inner, last), with and without a
    bias, default and other alpha and gain (zero included), no clamp, clamp 0, a clamp that bites and a loose one;
    the forward kernel against the reference, and the gradient kernel (called directly) against autograd."""
    alphas = [None, 0.0, 0.37] if act == "lrelu" else [None]
    checked = 0
    for (shape, dim), with_bias, alpha, gain, clamp in itertools.product(
        SHAPES_AND_DIMS, (True, False), alphas, (None, 1.0, 0.5, 0.0), (None, 0.0, 0.7, 256.0)
    ):
        msg = f"shape {shape}, dim {dim}, bias {with_bias}, alpha {alpha}, gain {gain}, clamp {clamp}"
        seed = len(shape) * 10 + dim
        x = _randn(*shape, seed=seed).to(dtype)
        bias = _randn(shape[dim], seed=seed + 1).to(dtype) if with_bias else None
        y = host_bias_act(x, bias, act, alpha, gain, clamp, dim)
        x_ref = x.double().requires_grad_()
        y_ref = bias_act(x_ref, bias.double() if with_bias else None, act, alpha, gain, clamp, dim, impl="ref")
        assert y.dtype == dtype and y.shape == x.shape, msg
        assert_close(y, y_ref, TOL[dtype], msg)
        # the gradient kernel, called directly, reads the slope off y
        dy = _randn(*shape, seed=seed + 2).to(dtype)
        default_alpha, default_gain, code = ACTIVATIONS[act]
        dx = host_ops.bias_act_grad(
            dy, y, dim % len(shape), code, default_alpha if alpha is None else alpha,
            default_gain if gain is None else gain, -1.0 if clamp is None else clamp,
        )  # fmt: skip
        (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy.double())
        pre = bias_act(x_ref.detach(), bias.double() if with_bias else None, act, alpha, gain, None, dim, impl="ref")
        inside, outside = _away_from_clamp(pre, clamp, 4 * TOL[dtype])
        assert_close(dx[inside], dx_ref[inside], TOL[dtype], msg)
        assert (dx[outside] == 0).all(), msg
        checked += 1
    assert checked >= 128


BIAS_ACT_CASES = [
    pytest.param("lrelu", None, 256.0, (2, 8, 6, 5), 1, id="network-conv-lrelu-clamp256"),
    pytest.param("linear", None, 256.0, (2, 8, 6, 5), 1, id="network-torgb-linear-clamp256"),
    pytest.param("lrelu", None, None, (16, 32), 1, id="network-mapping-lrelu"),
    pytest.param("relu", None, 1.0, (4, 6, 10), -1, id="relu-clamp1-lastdim"),
    pytest.param("lrelu", 0.05, 1.0, (3, 4, 5, 2, 3), 2, id="lrelu-alpha0.05-clamp1-5d"),
    pytest.param("linear", None, None, (33,), 0, id="linear-1d"),
]


def _bias_act_inputs(
    make_preactivation: Callable[..., torch.Tensor],
    act: str,
    alpha: float | None,
    clamp: float | None,
    shape: tuple[int, ...],
    dim: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 ``x`` and ``bias`` whose sum stays clear of the kinks of ``act`` and of the clamp."""
    default_alpha, gain, _ = ACTIVATIONS[act]
    pre = make_preactivation(
        shape, act=act, alpha=default_alpha if alpha is None else alpha, gain=gain, clamp=clamp, seed=len(shape)
    )
    bias = _randn(shape[dim], seed=11) * 0.5
    bshape = [1] * len(shape)
    bshape[dim] = -1
    return pre - bias.reshape(bshape), bias


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("act", "alpha", "clamp", "shape", "dim"), BIAS_ACT_CASES)
def test_bias_act_forward_backward_double_backward(
    act: str,
    alpha: float | None,
    clamp: float | None,
    shape: tuple[int, ...],
    dim: int,
    dtype: torch.dtype,
    make_preactivation: Callable[..., torch.Tensor],
) -> None:
    """Forward, gradients w.r.t. ``x`` and ``bias``, and the R1-style second derivative, in every dtype."""
    x64, b64 = _bias_act_inputs(make_preactivation, act, alpha, clamp, shape, dim)
    x = x64.to(dtype).requires_grad_()
    b = b64.to(dtype).requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    b_ref = b.detach().double().requires_grad_()
    y = host_bias_act(x, b, act, alpha, None, clamp, dim)
    y_ref = bias_act(x_ref, b_ref, act, alpha, None, clamp, dim, impl="ref")
    assert y.dtype == dtype
    assert_close(y, y_ref, TOL[dtype], "y")
    dy = _randn(*shape, seed=12).to(dtype)
    dx, db = torch.autograd.grad(y, (x, b), dy)
    dx_ref, db_ref = torch.autograd.grad(y_ref, (x_ref, b_ref), dy.double())
    assert dx.dtype == dtype and db.dtype == dtype
    assert_close(dx, dx_ref, TOL[dtype], "dx")
    assert_close(db, db_ref, 4 * TOL[dtype], "dbias")  # a sum over many elements in dtype
    weight = _randn(*shape, seed=13)
    got = r1_grads(lambda t, u: host_bias_act(t, u, act, alpha, None, clamp, dim), (x, b), weight)
    want = r1_grads(lambda t, u: bias_act(t, u, act, alpha, None, clamp, dim, impl="ref"), (x_ref, b_ref), weight)
    for name, a, c in zip(("y", "g", "dpenalty/dx", "dpenalty/dbias"), got, want):
        assert_close(a, c, 4 * TOL[dtype], name)


@pytest.mark.parametrize(("act", "alpha", "clamp", "shape", "dim"), BIAS_ACT_CASES)
def test_bias_act_gradcheck(
    act: str,
    alpha: float | None,
    clamp: float | None,
    shape: tuple[int, ...],
    dim: int,
    make_preactivation: Callable[..., torch.Tensor],
) -> None:
    """Float64 first and second derivatives of the CUDA path against finite differences."""
    small = tuple(min(s, 4) for s in shape)
    x64, b64 = _bias_act_inputs(make_preactivation, act, alpha, clamp, small, dim)
    x = x64.requires_grad_()
    b = b64.requires_grad_()

    def fn(t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return host_bias_act(t, u, act, alpha, None, clamp, dim)

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_layouts(act: str, layout: str, dim: int, make_preactivation: Callable[..., torch.Tensor]) -> None:
    """Permuted-dense and channels-last inputs (used in place: the channel index comes from the stride of ``dim``),
    sliced and broadcast ones (copied), and upstream gradients in another layout than the output."""
    shape = (2, 3, 9, 10)
    values, b64 = _bias_act_inputs(make_preactivation, act, None, 1.0, shape, dim)
    x = in_layout(values, layout).requires_grad_()
    b = b64.float().requires_grad_()
    x_ref = x.detach().double().contiguous().requires_grad_()
    b_ref = b.detach().double().requires_grad_()
    y = host_bias_act(x, b, act, None, None, 1.0, dim)
    y_ref = bias_act(x_ref, b_ref, act=act, clamp=1.0, dim=dim, impl="ref")
    assert_close(y, y_ref, TOL[torch.float32])
    dy = in_layout(_randn(*shape, seed=14), "sliced")
    dx, db = torch.autograd.grad(y, (x, b), dy)
    dx_ref, db_ref = torch.autograd.grad(y_ref, (x_ref, b_ref), dy.double())
    assert_close(dx, dx_ref, TOL[torch.float32])
    assert_close(db, db_ref, TOL[torch.float32])


@pytest.mark.parametrize("max_grid", [None, "1", "3"], ids=["full-grid", "grid-1", "grid-3"])
def test_bias_act_grid_stride(max_grid: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many blocks (24 576 elements: 96), and a grid capped to 1 or 3 blocks so that each thread strides."""
    if max_grid is not None:
        monkeypatch.setenv("SEMGAN_HOST_MAX_GRID", max_grid)
    x = _randn(4, 24, 16, 16, seed=15).float().requires_grad_()
    b = _randn(24, seed=16).float()
    x_ref = x.detach().double().requires_grad_()
    y = host_bias_act(x, b, "lrelu", None, None, 0.9, 1)
    y_ref = bias_act(x_ref, b.double(), "lrelu", clamp=0.9, impl="ref")
    assert_close(y, y_ref, TOL[torch.float32])
    dy = _randn(*x.shape, seed=17)
    (dx,) = torch.autograd.grad(y, x, dy.float())
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy)
    inside, outside = _away_from_clamp(bias_act(x_ref.detach(), b.double(), "lrelu", impl="ref"), 0.9, 1e-4)
    assert_close(dx[inside], dx_ref[inside], TOL[torch.float32])
    assert (dx[outside] == 0).all()


@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_bias_act_non_finite(act: str, clamp: float | None) -> None:
    """NaN and infinities come out as the reference's: NaN stays NaN through every activation and the clamp."""
    x = torch.tensor([[float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 2.0]], dtype=torch.float32)
    y = host_bias_act(x, torch.zeros(1), act, None, None, clamp, 0)
    y_ref = bias_act(x.double(), torch.zeros(1, dtype=torch.float64), act, clamp=clamp, dim=0, impl="ref")
    assert_close(y, y_ref, TOL[torch.float32])


def test_bias_act_empty_and_binding_checks(host_ops: ModuleType) -> None:
    """An empty tensor launches nothing; the binding refuses a wrong bias, dtype, dim or activation code."""
    empty = torch.empty(0, 3)
    assert host_ops.bias_act(empty, torch.zeros(3), 1, 2, 0.2, 1.4, -1.0).shape == (0, 3)
    assert host_ops.bias_act_grad(empty, empty, 1, 2, 0.2, 1.4, -1.0).shape == (0, 3)
    x = torch.randn(2, 3)
    with pytest.raises(RuntimeError, match="bias must be 1-D"):
        host_ops.bias_act(x, torch.zeros(4), 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="bias must match"):
        host_ops.bias_act(x, torch.zeros(3, dtype=torch.float64), 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="dim out of range"):
        host_ops.bias_act(x, torch.zeros(3), 2, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="activation code"):
        host_ops.bias_act(x, torch.zeros(3), 1, 3, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="support float32"):
        host_ops.bias_act(x.long(), torch.empty(0), 1, 0, 0.0, 1.0, -1.0)
    # dy in another dtype than y is converted before the kernel reads it with y's flat index
    y = host_ops.bias_act(x.half(), torch.zeros(3, dtype=torch.half), 1, 2, 0.2, 1.0, -1.0)
    dx = host_ops.bias_act_grad(torch.ones(2, 3), y, 1, 2, 0.2, 1.0, -1.0)
    assert dx.dtype == torch.half
    torch.testing.assert_close(dx.float(), torch.where(y.float() > 0, 1.0, 0.2), rtol=1e-3, atol=1e-3)
