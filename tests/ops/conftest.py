"""Shared fixtures of the op tests, and the test-only host build of the CUDA kernels (``host_ops``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest
import torch

PreactFactory = Callable[..., torch.Tensor]

CUDA_OPS_DIR = Path(__file__).resolve().parents[2] / "cuda_ops"
# the translation units of the real extension; each is compiled by g++ through a two-line wrapper
HOST_UNITS = ("upfirdn2d.cu", "bias_act.cu", "semgan_ops.cpp")


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


def build_host_ops(build_root: Path, verbose: bool = False) -> ModuleType:
    """Compile the sources in ``cuda_ops/`` for the CPU (``host_emulation.h``) and import them.

    Each translation unit of the real extension is compiled by the host compiler through a wrapper that defines
    ``SEMGAN_HOST_EMULATION`` and includes the unchanged source, so there is one copy of the kernel code. The module
    has the extension's functions (``upfirdn2d``, ``bias_act``, ``bias_act_grad``), taking CPU tensors.

    Args:
        build_root: cache folder; the build goes to a subfolder named by a hash of the sources and torch's version,
            so an unchanged tree is imported without compiling.
        verbose: print the compiler commands.

    Returns:
        the imported module.
    """
    from torch.utils.cpp_extension import load

    digest = hashlib.sha256()
    for path in sorted(CUDA_OPS_DIR.iterdir()):
        if path.suffix in (".cu", ".cpp", ".h", ".cuh"):
            digest.update(path.name.encode() + path.read_bytes())
    digest.update(f"{torch.__version__}|{sys.version_info[:2]}".encode())
    name = f"semgan_host_ops_{digest.hexdigest()[:12]}"
    build_dir = build_root / name
    for stale in build_root.glob("semgan_host_ops_*"):  # builds of earlier source trees
        if stale != build_dir:
            shutil.rmtree(stale, ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"  # torch's baton; one left by a killed build would make load() wait forever
    if lock.exists() and time.time() - lock.stat().st_mtime > 600:
        lock.unlink(missing_ok=True)
    sources = []
    for unit in HOST_UNITS:
        wrapper = build_dir / f"host_{Path(unit).stem}.cpp"
        text = f'#define SEMGAN_HOST_EMULATION 1\n#include "{unit}"\n'
        if not wrapper.exists() or wrapper.read_text() != text:
            wrapper.write_text(text)
        sources.append(str(wrapper))
    # torch looks for ninja on PATH, where the virtual environment's bin may be missing
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), path])
    try:
        return load(
            name=name,
            sources=sources,
            build_directory=str(build_dir),
            extra_cflags=["-O2"],
            extra_include_paths=[str(CUDA_OPS_DIR)],
            with_cuda=False,
            verbose=verbose,
        )
    finally:
        os.environ["PATH"] = path


@pytest.fixture(scope="session")
def host_ops(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The CUDA ops compiled for the CPU, built once per source tree into pytest's cache folder (about 40 s)."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    cache = getattr(request.config, "cache", None)
    root = cache.mkdir("semgan_host_ops") if cache is not None else tmp_path_factory.mktemp("semgan_host_ops")
    return build_host_ops(Path(root))
