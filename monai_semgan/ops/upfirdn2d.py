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
"""Upsample, FIR-filter, downsample (``upfirdn2d``): a PyTorch reference and a CUDA path with one signature.

The operation, per spatial axis, is:

1. upsample by inserting ``up - 1`` zeros after every sample,
2. pad with ``pad0`` zeros before and ``pad1`` after,
3. cross-correlate with the FIR kernel (the convention of :func:`torch.nn.functional.conv2d`; the blur kernels used
   by StyleGAN2 are symmetric, so correlation and convolution agree),
4. keep every ``down``-th sample, starting with the first.

The output size along an axis of input size ``n`` is ``(n * up + pad0 + pad1 - taps) // down + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_semgan.ops.cuda_extension import cuda_ops_or_none

__all__ = ["downsample2d", "filter2d", "setup_kernel", "upfirdn2d", "upfirdn2d_output_size", "upsample2d"]

_IMPLS = ("ref", "cuda")


def setup_kernel(taps: Sequence[float] | torch.Tensor = (1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """Make a float32 FIR kernel from taps; a 1-D kernel stands for a separable 2-D one (its outer product).

    Args:
        taps: 1-D taps (separable) or a 2-D ``[kh, kw]`` kernel.
        normalize: scale the kernel so that its 2-D form sums to one (a blur that keeps the mean).

    Returns:
        A float32 tensor of rank 1 or 2.

    Raises:
        ValueError: when the kernel is not of rank 1 or 2, is empty, or sums to zero while ``normalize`` is set.
    """
    kernel = torch.as_tensor(taps, dtype=torch.float32)
    if kernel.ndim not in (1, 2) or kernel.numel() == 0:
        raise ValueError(f"kernel must be a non-empty 1-D or 2-D tensor, got shape {tuple(kernel.shape)}.")
    if normalize:
        total = kernel.sum() ** 2 if kernel.ndim == 1 else kernel.sum()
        if float(total) == 0.0:
            raise ValueError("kernel sums to zero and cannot be normalized.")
        kernel = kernel / (kernel.sum() if kernel.ndim == 1 else total)
    return kernel


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair (x, y), got {value}.")
    return value  # type: ignore[return-value]


def _parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, (pad_x, pad_y) or (x0, x1, y0, y1), got {padding}.")


def upfirdn2d_output_size(size: int, taps: int, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0) -> int:
    """Output length along one axis.

    Args:
        size: input length.
        taps: kernel length along the axis.
        up: upsampling factor.
        down: downsampling factor.
        pad0: zeros before.
        pad1: zeros after.

    Returns:
        ``(size * up + pad0 + pad1 - taps) // down + 1``.
    """
    return (size * up + pad0 + pad1 - taps) // down + 1


def _upfirdn2d_ref_2d(x: torch.Tensor, kernel: torch.Tensor, up: tuple, down: tuple, pad: tuple) -> torch.Tensor:
    """Reference for a 2-D kernel; negative padding crops. Only differentiable torch ops, so any order of
    derivative works."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = pad
    weight = kernel.to(x.dtype)[None, None].expand(c, 1, kh, kw)
    if upx > 1 or upy > 1:
        # conv_transpose2d with the flipped kernel is zero insertion + correlation, without the zero-stuffed tensor.
        y = F.conv_transpose2d(x, weight.flip([2, 3]), stride=(upy, upx), groups=c)
        # y[o'] holds the correlation at output position o = o' - (taps - 1 - pad0); the right edge then gets
        # whatever padding or cropping makes the length (n * up + pad0 + pad1 - taps + 1).
        lx0, ly0 = px0 - (kw - 1), py0 - (kh - 1)
        full_w = w * upx + px0 + px1 - kw + 1
        full_h = h * upy + py0 + py1 - kh + 1
        lx1 = full_w - (y.shape[3] + lx0)
        ly1 = full_h - (y.shape[2] + ly0)
        y = F.pad(y, [lx0, lx1, ly0, ly1])
        if downx > 1 or downy > 1:
            y = y[:, :, ::downy, ::downx]
        return y
    x = F.pad(x, [px0, px1, py0, py1])
    return F.conv2d(x, weight, stride=(downy, downx), groups=c)


class _Upfirdn2dFunction(torch.autograd.Function):
    """upfirdn2d (CUDA kernel or PyTorch reference) whose backward is another upfirdn2d of the same implementation:
    flipped kernel, up and down swapped, adjoint padding. Every order of derivative is available, and no gradient is
    ever formed for the fixed FIR kernel (autograd through the reference's convolutions would compute one per channel
    in every R1 and path-length step)."""

    @staticmethod
    def forward(ctx, x, kernel, up, down, pad, use_cuda):  # type: ignore[override]
        # a separable kernel runs as one 2-D pass: on CPU one pass over 4 x 4 taps beats two over 4 x 1 and 1 x 4
        kernel2d = kernel if kernel.ndim == 2 else torch.outer(kernel, kernel)
        if use_cuda:
            ext = cuda_ops_or_none()
            y = ext.upfirdn2d(x, kernel2d.float().contiguous(), up[0], up[1], down[0], down[1], *pad)
        else:
            y = _upfirdn2d_ref_2d(x, kernel2d, up, down, pad)
        ctx.save_for_backward(kernel)
        ctx.config = (x.shape, up, down, pad, use_cuda)
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        (kernel,) = ctx.saved_tensors
        shape, up, down, pad, use_cuda = ctx.config
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        kh, kw = (kernel.shape[0],) * 2 if kernel.ndim == 1 else kernel.shape
        h, w = shape[2], shape[3]
        out_w, out_h = dy.shape[3], dy.shape[2]
        grad_pad = (
            kw - 1 - pad[0],
            w * up[0] - out_w * down[0] + pad[0],
            kh - 1 - pad[2],
            h * up[1] - out_h * down[1] + pad[2],
        )
        flipped = kernel.flip(list(range(kernel.ndim)))
        dx = _Upfirdn2dFunction.apply(dy, flipped, down, up, grad_pad, use_cuda)
        return dx, None, None, None, None, None


def _check_args(x: torch.Tensor, kernel: torch.Tensor, up: tuple, down: tuple, pad: tuple, impl: str | None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}.")
    if not isinstance(kernel, torch.Tensor) or kernel.ndim not in (1, 2) or kernel.numel() == 0:
        raise ValueError(f"kernel must be a non-empty 1-D or 2-D tensor, got {getattr(kernel, 'shape', kernel)}.")
    if min(up) < 1:
        raise ValueError(f"up must be >= 1, got {up}.")
    if min(down) < 1:
        raise ValueError(f"down must be >= 1, got {down}.")
    if min(pad) < 0:
        raise ValueError(f"padding must be >= 0, got {pad}.")
    if impl not in (None, *_IMPLS):
        raise ValueError(f"impl must be one of {_IMPLS} or None, got {impl!r}.")
    kh, kw = (kernel.shape[0],) * 2 if kernel.ndim == 1 else kernel.shape
    for name, size, taps, u, d, p0, p1 in (
        ("width", x.shape[3], kw, up[0], down[0], pad[0], pad[1]),
        ("height", x.shape[2], kh, up[1], down[1], pad[2], pad[3]),
    ):
        if upfirdn2d_output_size(size, taps, u, d, p0, p1) < 1:
            raise ValueError(f"padding and kernel leave no output along the {name} (input {size}, {taps} taps).")


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with an FIR kernel, downsample.

    Args:
        x: input ``[N, C, H, W]``, any float dtype; any memory layout.
        kernel: float32 FIR kernel, 1-D (separable) or 2-D ``[kh, kw]``; see :func:`setup_kernel`.
        up: upsampling factor, an int or ``(x, y)``.
        down: downsampling factor, an int or ``(x, y)``.
        padding: zeros added after upsampling: an int, ``(pad_x, pad_y)`` or ``(x0, x1, y0, y1)``; not negative.
        gain: overall scale of the kernel (``up ** 2`` keeps the mean of a 2-D upsampling).
        impl: ``"ref"`` (PyTorch), ``"cuda"`` (compiled kernel), or ``None``: CUDA when ``x`` is on a GPU and the
            extension builds, otherwise the reference.

    Returns:
        ``[N, C, H_out, W_out]`` with the dtype of ``x``.

    Raises:
        ValueError: on a tensor of the wrong rank, negative padding or factors below one, or an unknown ``impl``.
    """
    up_, down_, pad_ = _pair(up, "up"), _pair(down, "down"), _parse_padding(padding)
    _check_args(x, kernel, up_, down_, pad_, impl)
    if gain != 1.0:
        if kernel.ndim == 1 and gain < 0:
            kernel = torch.outer(kernel, kernel)  # a negative gain has no real square root to split over the axes
        # a separable kernel is applied once per axis, so each axis takes the square root of the gain
        kernel = kernel * (gain**0.5 if kernel.ndim == 1 else gain)
    if impl != "ref" and x.is_cuda:
        if cuda_ops_or_none() is not None:
            return _Upfirdn2dFunction.apply(x, kernel.to(x.device), up_, down_, pad_, True)
        if impl == "cuda":
            raise RuntimeError("impl='cuda' was requested but the CUDA extension is not available (see the warning).")
    elif impl == "cuda":
        raise ValueError("impl='cuda' needs x on a CUDA device.")
    kernel = kernel.to(x.device, x.dtype)
    if torch.jit.is_tracing():
        # TorchScript cannot save a Python autograd Function; traced graphs (exported models) only run forward
        return _upfirdn2d_ref_2d(x, kernel if kernel.ndim == 2 else torch.outer(kernel, kernel), up_, down_, pad_)
    return _Upfirdn2dFunction.apply(x, kernel, up_, down_, pad_, False)


def upsample2d(
    x: torch.Tensor, kernel: torch.Tensor, factor: int = 2, gain: float = 1.0, impl: str | None = None
) -> torch.Tensor:
    """Upsample by ``factor`` with an anti-aliasing FIR kernel; output ``[N, C, H * factor, W * factor]``.

    Args:
        x: input ``[N, C, H, W]``.
        kernel: FIR kernel (1-D separable or 2-D).
        factor: integer upsampling factor.
        gain: extra gain on top of the ``factor ** 2`` that keeps the mean.
        impl: see :func:`upfirdn2d`.

    Returns:
        the upsampled tensor.
    """
    taps_x = kernel.shape[-1]
    taps_y = kernel.shape[0]
    px = taps_x - factor
    py = taps_y - factor
    pad = ((px + 1) // 2 + factor - 1, px // 2, (py + 1) // 2 + factor - 1, py // 2)
    return upfirdn2d(x, kernel, up=factor, padding=pad, gain=gain * factor**2, impl=impl)


def downsample2d(
    x: torch.Tensor, kernel: torch.Tensor, factor: int = 2, gain: float = 1.0, impl: str | None = None
) -> torch.Tensor:
    """Filter with an FIR kernel and downsample by ``factor``; output ``[N, C, H // factor, W // factor]``.

    Args:
        x: input ``[N, C, H, W]``.
        kernel: FIR kernel (1-D separable or 2-D).
        factor: integer downsampling factor.
        gain: scale of the output.
        impl: see :func:`upfirdn2d`.

    Returns:
        the downsampled tensor.
    """
    px = kernel.shape[-1] - factor
    py = kernel.shape[0] - factor
    pad = ((px + 1) // 2, px // 2, (py + 1) // 2, py // 2)
    return upfirdn2d(x, kernel, down=factor, padding=pad, gain=gain, impl=impl)


def filter2d(
    x: torch.Tensor, kernel: torch.Tensor, padding: int | Sequence[int] = 0, gain: float = 1.0, impl: str | None = None
) -> torch.Tensor:
    """Filter with an FIR kernel, keeping the size when ``padding`` is 0 (``taps - 1`` zeros are split over the two
    sides, then ``padding`` more are added to each).

    Args:
        x: input ``[N, C, H, W]``.
        kernel: FIR kernel (1-D separable or 2-D).
        padding: extra zeros on every side.
        gain: scale of the output.
        impl: see :func:`upfirdn2d`.

    Returns:
        the filtered tensor.
    """
    extra = _parse_padding(padding)
    tx, ty = kernel.shape[-1] - 1, kernel.shape[0] - 1
    pad = ((tx + 1) // 2 + extra[0], tx // 2 + extra[1], (ty + 1) // 2 + extra[2], ty // 2 + extra[3])
    return upfirdn2d(x, kernel, padding=pad, gain=gain, impl=impl)
