"""CPU tests of ``upfirdn2d`` and its wrappers: the reference against an independent formulation, shapes, gradients
and argument checks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from monai_semgan.ops import downsample2d, filter2d, setup_kernel, upfirdn2d, upsample2d
from monai_semgan.ops.upfirdn2d import upfirdn2d_output_size


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _pad4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return tuple(padding)  # type: ignore[return-value]


def naive_upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
) -> torch.Tensor:
    """The definition, step by step: zero-stuffed tensor, ``F.pad``, depthwise ``F.conv2d``, strided slicing."""
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    x0, x1, y0, y1 = _pad4(padding)
    k2 = kernel if kernel.ndim == 2 else kernel[:, None] * kernel[None, :]  # rows run along y, columns along x
    n, c, h, w = x.shape
    stuffed = x.new_zeros(n, c, h * upy, w * upx)
    stuffed[:, :, ::upy, ::upx] = x
    padded = F.pad(stuffed, [x0, x1, y0, y1])
    weight = (k2.to(x.dtype) * gain)[None, None].repeat(c, 1, 1, 1)  # depthwise [C, 1, kh, kw]
    full = F.conv2d(padded, weight, groups=c)
    return full[:, :, ::downy, ::downx]


KERNEL_1D = torch.tensor([1.0, 2.0, 4.0, -1.0])  # not symmetric: a flipped kernel would give other numbers
KERNEL_2D = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.5, 2.0, -1.0], [4.0, 1.0, -0.5, 0.25]])  # [kh=3, kw=4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel_rank", [1, 2])
@pytest.mark.parametrize("padding", [0, (1, 2), (2, 1, 0, 3), (0, 3, 2, 1)])
@pytest.mark.parametrize("down", [1, 2, (1, 2)])
@pytest.mark.parametrize("up", [1, 2, (2, 1)])
def test_matches_definition(
    up: int | tuple[int, int],
    down: int | tuple[int, int],
    padding: int | tuple[int, ...],
    kernel_rank: int,
    dtype: torch.dtype,
) -> None:
    """Reference equals zero insertion + pad + conv2d + decimation, with the documented output size."""
    x = torch.randn(2, 3, 7, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    kernel = (KERNEL_1D if kernel_rank == 1 else KERNEL_2D).to(dtype)  # float64 taps keep float64 precision
    gain = 1.0 if kernel_rank == 1 and up == 1 else 2.5
    y = upfirdn2d(x, kernel, up=up, down=down, padding=padding, gain=gain)
    expected = naive_upfirdn2d(x, kernel, up=up, down=down, padding=padding, gain=gain)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    x0, x1, y0, y1 = _pad4(padding)
    kh, kw = (kernel.shape[0],) * 2 if kernel.ndim == 1 else kernel.shape
    out_h = upfirdn2d_output_size(7, kh, upy, downy, y0, y1)
    out_w = upfirdn2d_output_size(5, kw, upx, downx, x0, x1)
    assert y.shape == expected.shape == (2, 3, out_h, out_w)
    assert y.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y, expected, rtol=tol, atol=tol)


def test_impulse_response_is_the_flipped_kernel() -> None:
    """Cross-correlation: an impulse comes out as the kernel flipped in both axes, placed by the padding."""
    x = torch.zeros(1, 1, 5, 6, dtype=torch.float64)
    x[0, 0, 2, 3] = 1.0
    y = upfirdn2d(x, KERNEL_2D.double(), padding=(3, 3, 2, 2))  # full correlation: taps - 1 on each side
    assert y.shape == (1, 1, 5 + 2, 6 + 3)
    expected = torch.zeros_like(y)
    expected[0, 0, 2:5, 3:7] = KERNEL_2D.double().flip([0, 1])
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("gain", [3.0, -2.0])
def test_separable_equals_outer_product(gain: float) -> None:
    """A 1-D kernel acts as its outer product, with the gain applied once (also a negative one)."""
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    k1 = KERNEL_1D.double()
    y1 = upfirdn2d(x, k1, up=2, down=(1, 2), padding=(2, 1, 1, 3), gain=gain)
    y2 = upfirdn2d(x, torch.outer(k1, k1), up=2, down=(1, 2), padding=(2, 1, 1, 3), gain=gain)
    y0 = upfirdn2d(x, k1, up=2, down=(1, 2), padding=(2, 1, 1, 3))
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(y1, gain * y0)


def test_setup_kernel() -> None:
    """``setup_kernel`` normalises the 2-D form to sum one for 1-D and 2-D taps, and rejects bad taps."""
    k1 = setup_kernel([1, 3, 3, 1])
    assert k1.dtype == torch.float32 and k1.shape == (4,)
    torch.testing.assert_close(torch.outer(k1, k1).sum(), torch.tensor(1.0))
    k2 = setup_kernel([[1, 2], [3, 4]])
    torch.testing.assert_close(k2.sum(), torch.tensor(1.0))
    torch.testing.assert_close(setup_kernel([1, 2], normalize=False), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="kernel"):
        setup_kernel(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="zero"):
        setup_kernel([1, -1])


def test_memory_layouts_and_impl() -> None:
    """Channels-last and non-contiguous inputs give the same numbers; ``impl='ref'`` equals the default on CPU."""
    x = torch.randn(2, 3, 9, 8, generator=torch.Generator().manual_seed(2))
    kernel = setup_kernel([1, 3, 3, 1])
    expected = upfirdn2d(x, kernel, up=2, down=1, padding=(2, 1, 2, 1))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(upfirdn2d(channels_last, kernel, up=2, padding=(2, 1, 2, 1)), expected)
    transposed = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not transposed.is_contiguous()
    torch.testing.assert_close(upfirdn2d(transposed, kernel, up=2, padding=(2, 1, 2, 1)), expected)
    sliced = torch.randn(2, 6, 9, 16)[:, ::2, :, ::2]
    torch.testing.assert_close(
        upfirdn2d(sliced, kernel, down=2, padding=1), upfirdn2d(sliced.contiguous(), kernel, down=2, padding=1)
    )
    torch.testing.assert_close(upfirdn2d(x, kernel, up=2, padding=(2, 1, 2, 1), impl="ref"), expected)


RESAMPLE_KERNELS = {"1d": setup_kernel([1, 3, 3, 1]), "2d": setup_kernel(torch.arange(20.0).reshape(4, 5) % 7 + 1)}


@pytest.mark.parametrize("kernel_name", ["1d", "2d"])
@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
@pytest.mark.parametrize("factor", [2, 4])
def test_resample_shapes(factor: int, size: tuple[int, int], kernel_name: str) -> None:
    """Up by ``factor``, down by ``factor`` (floor) and same-size filtering; ``gain`` scales the output."""
    kernel = RESAMPLE_KERNELS[kernel_name]
    h, w = size
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(5))
    up = upsample2d(x, kernel, factor=factor)
    assert up.shape == (2, 3, h * factor, w * factor)
    assert downsample2d(x, kernel, factor=factor).shape == (2, 3, h // factor, w // factor)
    assert filter2d(x, kernel).shape == x.shape
    assert filter2d(x, kernel, padding=1).shape == (2, 3, h + 2, w + 2)
    assert filter2d(x, kernel, padding=(1, 0, 2, 3)).shape == (2, 3, h + 5, w + 1)
    torch.testing.assert_close(upsample2d(x, kernel, factor=factor, gain=2.0), 2.0 * up)


# for the x2 upsampling to keep a constant, both polyphase parts of the kernel must have the same sum (along each axis)
CONSTANT_KERNELS = {
    "1d": setup_kernel([1, 3, 3, 1]),
    "2d": setup_kernel(torch.outer(torch.ones(2), torch.tensor([1.0, 2, 3, 2]))),
}


@pytest.mark.parametrize("kernel_name", ["1d", "2d"])
@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
def test_constant_stays_constant(size: tuple[int, int], kernel_name: str) -> None:
    """A constant image stays constant away from the zero padding after x2 up, /2 down and filtering."""
    kernel = CONSTANT_KERNELS[kernel_name]
    x = torch.full((1, 2, *size), 1.7)
    for y, margin in ((upsample2d(x, kernel), 3), (downsample2d(x, kernel), 1), (filter2d(x, kernel), 2)):
        interior = y[:, :, margin:-margin, margin:-margin]
        assert interior.numel() > 0
        torch.testing.assert_close(interior, torch.full_like(interior, 1.7))


def test_resample_matches_definition() -> None:
    """The wrappers pick the StyleGAN2 paddings: taps split as (taps + factor - 1) // 2 before, the rest after."""
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    k = setup_kernel([1, 3, 3, 1]).double()
    torch.testing.assert_close(upsample2d(x, k), naive_upfirdn2d(x, k, up=2, padding=(2, 1, 2, 1), gain=4.0))
    torch.testing.assert_close(downsample2d(x, k), naive_upfirdn2d(x, k, down=2, padding=(1, 1, 1, 1)))
    torch.testing.assert_close(filter2d(x, k), naive_upfirdn2d(x, k, padding=(2, 1, 2, 1)))
    k3 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)  # kh=2, kw=3
    torch.testing.assert_close(filter2d(x, k3), naive_upfirdn2d(x, k3, padding=(1, 1, 1, 0)))
    torch.testing.assert_close(upsample2d(x, k3), naive_upfirdn2d(x, k3, up=2, padding=(2, 0, 1, 0), gain=4.0))


GRAD_CASES = [
    pytest.param(1, 1, 1, "1d", id="filter-1d"),
    pytest.param(2, 1, (2, 1, 2, 1), "1d", id="up2-1d"),
    pytest.param(1, 2, (1, 1, 1, 1), "2d", id="down2-2d"),
    pytest.param((2, 1), (1, 2), (3, 0, 1, 2), "2d", id="anisotropic-2d"),
    pytest.param(2, 2, (0, 4, 2, 1), "1d", id="up2-down2-1d"),
]


@pytest.mark.parametrize(("up", "down", "padding", "kernel_name"), GRAD_CASES)
def test_gradcheck(
    up: int | tuple[int, int], down: int | tuple[int, int], padding: int | tuple[int, ...], kernel_name: str
) -> None:
    """First and second derivatives of the reference agree with finite differences in float64."""
    kernel = (KERNEL_1D if kernel_name == "1d" else KERNEL_2D).double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)

    def fn(inp: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(inp, kernel, up=up, down=down, padding=padding, gain=1.5)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def _x(shape: tuple[int, ...] = (1, 2, 5, 6)) -> torch.Tensor:
    return torch.zeros(shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"x": _x((2, 5, 6))}, r"\bx\b", id="x-rank3"),
        pytest.param({"x": _x((1, 1, 2, 5, 6))}, r"\bx\b", id="x-rank5"),
        pytest.param({"padding": -1}, "padding", id="padding-negative-int"),
        pytest.param({"padding": (0, 1, -2, 0)}, "padding", id="padding-negative-tuple"),
        pytest.param({"padding": (1, 2, 3)}, "padding", id="padding-length3"),
        pytest.param({"kernel": torch.ones(2, 2, 2)}, "kernel", id="kernel-rank3"),
        pytest.param({"kernel": torch.ones(0)}, "kernel", id="kernel-empty"),
        pytest.param({"up": 0}, r"\bup\b", id="up-0"),
        pytest.param({"up": (2, 0)}, r"\bup\b", id="up-pair-0"),
        pytest.param({"down": 0}, "down", id="down-0"),
        pytest.param({"down": (1, 2, 3)}, "down", id="down-length3"),
        pytest.param({"impl": "triton"}, "impl", id="impl-unknown"),
        pytest.param({"impl": "cuda"}, "impl", id="impl-cuda-on-cpu"),
        pytest.param({"x": _x((1, 1, 2, 2)), "kernel": torch.ones(4)}, "no output", id="empty-output"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    """Each bad argument raises ValueError naming it."""
    args: dict[str, object] = {"x": _x(), "kernel": setup_kernel([1, 3, 3, 1])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        upfirdn2d(**args)  # type: ignore[arg-type]
