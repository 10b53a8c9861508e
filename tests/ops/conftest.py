"""Shared fixtures of the op tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
import torch

PreactFactory = Callable[..., torch.Tensor]


@pytest.fixture(scope="module", autouse=True)
def single_cpu_thread() -> Iterator[None]:
    """Run the CPU ops on one thread: the tensors here are tiny, and on a busy 2-core machine intra-op threads make
    the thousands of small ops of gradcheck tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _make_preactivation(
    shape: Sequence[int],
    act: str = "linear",
    alpha: float = 0.2,
    gain: float = 1.0,
    clamp: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Float64 values ``v`` (meant as ``x + bias``) whose ``bias_act`` output is at least 0.1 away from the kinks.

    The magnitude of the output before clamping is drawn from [0.2, 2] minus a band of +-0.15 around ``clamp``, and
    ``v`` is solved from it, so ``v`` is never near 0 (where relu/lrelu bend) nor the output near ``+-clamp``.
    Gradients there are well defined and survive float16/bfloat16 rounding and gradcheck's finite differences.
    """
    gen = torch.Generator().manual_seed(seed)
    out = 0.2 + 1.8 * torch.rand(tuple(shape), generator=gen, dtype=torch.float64)
    if clamp is not None:
        out = torch.where((out - clamp).abs() < 0.15, out + 0.3, out)
    positive = torch.rand(tuple(shape), generator=gen) < 0.5
    if act == "lrelu" and alpha > 0:
        negative = -out / (gain * alpha)
    else:
        negative = -out / gain  # relu: any negative value gives 0
    return torch.where(positive, out / gain, negative)


@pytest.fixture
def make_preactivation() -> PreactFactory:
    """Factory ``(shape, act, alpha, gain, clamp, seed) -> float64 tensor`` of pre-activations away from kinks."""
    return _make_preactivation
