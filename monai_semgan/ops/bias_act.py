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
"""Fused bias + activation + gain (+ clamp): a PyTorch reference and a CUDA path with one signature.

``y = clamp(act(x + bias) * gain, -clamp, clamp)``. For the piecewise-linear activations supported here the
derivative depends only on the sign of ``y``, so the CUDA backward is one more elementwise op of the same kind
(``dx = dy * slope(y)``), itself linear in ``dy``: that is what makes double backward (R1, path length) work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from monai_semgan.ops.cuda_extension import cuda_ops_or_none

__all__ = ["ACTIVATIONS", "bias_act"]

# name -> (default alpha, default gain, code used by the CUDA kernel)
ACTIVATIONS: dict[str, tuple[float, float, int]] = {
    "linear": (0.0, 1.0, 0),
    "relu": (0.0, math.sqrt(2.0), 1),
    "lrelu": (0.2, math.sqrt(2.0), 2),
}
_IMPLS = ("ref", "cuda")


def _bias_act_ref(
    x: torch.Tensor, bias: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float, clamp: float | None
) -> torch.Tensor:
    shape = [-1 if i == dim else 1 for i in range(x.ndim)]
    if act != "linear" and gain > 0 and alpha >= 0:
        # relu and lrelu are positively homogeneous, so act(x + b) * g == act(x * g + b * g): scale and add into one
        # fresh buffer, then activate it in place (two passes over memory instead of four); torch has no backward for
        # an in-place leaky_relu with a negative slope, so that case takes the out-of-place branch
        y = x * gain
        if bias is not None:
            y = y.add_(bias.reshape(shape) * gain)
        y = F.leaky_relu_(y, alpha) if act == "lrelu" else F.relu_(y)
    else:
        y = x + bias.reshape(shape) if bias is not None else x
        if act == "lrelu":
            y = F.leaky_relu(y, alpha)
        elif act == "relu":
            y = F.relu(y)
        if gain != 1.0:
            y = y * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return y


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, dim, act_code, alpha, gain, clamp):  # type: ignore[override]
        ext = cuda_ops_or_none()
        b = bias if bias is not None else x.new_empty([0])
        y = ext.bias_act(x, b, dim, act_code, alpha, gain, -1.0 if clamp is None else clamp)
        ctx.save_for_backward(y)
        ctx.config = (dim, act_code, alpha, gain, clamp, bias is not None)
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        dim, act_code, alpha, gain, clamp, has_bias = ctx.config
        dx = _BiasActGradCuda.apply(dy, y, dim, act_code, alpha, gain, clamp)
        db = None
        if has_bias and ctx.needs_input_grad[1]:
            others = [i for i in range(dx.ndim) if i != dim % dx.ndim]
            # a 1-D x is its own bias gradient: sum([]) would sum over every dimension
            db = dx.sum(others) if others else dx
        return dx, db, None, None, None, None, None


class _BiasActGradCuda(torch.autograd.Function):
    """``dx = dy * slope(y)``; linear in ``dy`` and piecewise constant in ``y``, so its own backward is itself."""

    @staticmethod
    def forward(ctx, dy, y, dim, act_code, alpha, gain, clamp):  # type: ignore[override]
        ext = cuda_ops_or_none()
        dx = ext.bias_act_grad(dy, y, dim, act_code, alpha, gain, -1.0 if clamp is None else clamp)
        ctx.save_for_backward(y)
        ctx.config = (dim, act_code, alpha, gain, clamp)
        return dx

    @staticmethod
    def backward(ctx, ddx):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        dim, act_code, alpha, gain, clamp = ctx.config
        ddy = _BiasActGradCuda.apply(ddx, y, dim, act_code, alpha, gain, clamp)
        return ddy, None, None, None, None, None, None


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Add a bias along ``dim``, apply an activation, multiply by a gain and optionally clamp.

    Args:
        x: input of any rank and float dtype.
        bias: 1-D tensor with ``x.shape[dim]`` elements, or ``None``.
        act: ``"linear"``, ``"relu"`` or ``"lrelu"``.
        alpha: negative slope of ``lrelu`` (default 0.2); ignored otherwise.
        gain: output scale; default ``sqrt(2)`` for ``relu``/``lrelu`` (keeps the signal's magnitude), 1 for linear.
        clamp: clamp the output to ``[-clamp, clamp]``; ``None`` for no clamping.
        dim: the axis the bias runs along.
        impl: ``"ref"`` (PyTorch), ``"cuda"`` (compiled kernel), or ``None``: CUDA when ``x`` is on a GPU and the
            extension builds, otherwise the reference.

    Returns:
        a tensor of the shape and dtype of ``x``.

    Raises:
        ValueError: on an unknown activation or ``impl``, a bias of the wrong rank or length, a ``dim`` out of range
            or a negative ``clamp``, or ``impl="cuda"`` with a negative ``gain`` or ``alpha`` for relu/lrelu (the
            reference serves those when ``impl`` is ``None``).
    """
    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        raise ValueError(f"x must be a tensor with at least one dimension, got {getattr(x, 'shape', type(x))}.")
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}.")
    if impl not in (None, *_IMPLS):
        raise ValueError(f"impl must be one of {_IMPLS} or None, got {impl!r}.")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim must index a dimension of x (rank {x.ndim}), got {dim}.")
    dim = dim % x.ndim
    if bias is not None:
        if bias.ndim != 1 or bias.shape[0] != x.shape[dim]:
            raise ValueError(
                f"bias must be 1-D with x.shape[{dim}] = {x.shape[dim]} elements, got shape {tuple(bias.shape)}."
            )
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be >= 0 or None, got {clamp}.")
    default_alpha, default_gain, code = ACTIVATIONS[act]
    alpha = float(default_alpha if alpha is None else alpha)
    gain = float(default_gain if gain is None else gain)
    bias = bias.to(x.dtype) if bias is not None else None  # the output has the dtype of x on both paths
    # the CUDA backward reads the slope off the sign of y, which relu/lrelu keep only when gain, alpha >= 0
    cuda_ok = code == 0 or (gain >= 0 and (code == 1 or alpha >= 0))
    if impl != "ref" and x.is_cuda:
        if not cuda_ok:
            if impl == "cuda":
                raise ValueError(f"impl='cuda' with act={act!r} needs gain >= 0 and alpha >= 0, got {gain}, {alpha}.")
        elif cuda_ops_or_none() is not None:
            return _BiasActCuda.apply(x, bias, dim, code, alpha, gain, clamp)
        elif impl == "cuda":
            raise RuntimeError("impl='cuda' was requested but the CUDA extension is not available (see the warning).")
    elif impl == "cuda":
        raise ValueError("impl='cuda' needs x on a CUDA device.")
    return _bias_act_ref(x, bias, dim, act, alpha, gain, clamp)
