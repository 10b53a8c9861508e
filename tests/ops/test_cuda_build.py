"""Build tests of the CUDA extension that need nvcc (and a CUDA build of torch) but no GPU, and the guarantees that
hold without one: importing never compiles, and without a GPU no build is attempted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from monai_semgan.ops import cuda_extension
from monai_semgan.ops.cuda_extension import (
    CudaOpsBuildError,
    build_cuda_ops,
    cuda_build_dir,
    cuda_ops_or_none,
    cuda_sources_dir,
    default_arch_list,
)

CUDA_OPS_DIR = Path(__file__).resolve().parents[2] / "cuda_ops"


def _find_nvcc() -> str | None:
    for candidate in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if candidate and Path(candidate, "bin", "nvcc").is_file():
            return str(Path(candidate, "bin", "nvcc"))
    return shutil.which("nvcc")


NVCC = _find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")
needs_cuda_torch = pytest.mark.skipif(torch.version.cuda is None, reason="CPU-only torch build")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty build cache for this test, and the sources of the repository."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MONAI_SEMGAN_CACHE", str(cache))
    monkeypatch.delenv("MONAI_SEMGAN_CUDA_SOURCES", raising=False)
    monkeypatch.delenv("MONAI_SEMGAN_CUDA_OPS", raising=False)
    return cache


@needs_nvcc
@pytest.mark.parametrize("source", sorted(CUDA_OPS_DIR.glob("*.cu")), ids=lambda p: p.name)
def test_nvcc_compiles(source: Path, tmp_path: Path) -> None:
    """Every kernel file compiles on its own (no torch headers) for sm_80 and sm_90."""
    cmd = [
        str(NVCC),
        "-std=c++17",
        "-c",
        str(source),
        "-o",
        str(tmp_path / f"{source.stem}.o"),
        "-I",
        str(CUDA_OPS_DIR),
        "-gencode",
        "arch=compute_80,code=sm_80",
        "-gencode",
        "arch=compute_90,code=sm_90",
    ]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert proc.returncode == 0, f"nvcc failed on {source.name}:\n{proc.stderr}"
    assert (tmp_path / f"{source.stem}.o").stat().st_size > 0


def test_sources_dir_and_arch_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources default to the repository's ``cuda_ops/``; ``$TORCH_CUDA_ARCH_LIST`` sets the architectures."""
    monkeypatch.delenv("MONAI_SEMGAN_CUDA_SOURCES", raising=False)
    installed = Path(cuda_extension.__file__).resolve().parent.parent / "cuda_ops"  # a wheel ships them here
    assert cuda_sources_dir().resolve() in (CUDA_OPS_DIR, installed)
    monkeypatch.setenv("MONAI_SEMGAN_CUDA_SOURCES", str(tmp_path))  # no .cu there: falls back to the default
    assert any(cuda_sources_dir().glob("*.cu"))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.5;8.6")
    assert default_arch_list() == "7.5;8.6"


def test_build_dir_follows_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache folder is keyed by the source contents and the architectures, and lives under the cache root."""
    sources = tmp_path / "src"
    shutil.copytree(CUDA_OPS_DIR, sources)
    monkeypatch.setenv("MONAI_SEMGAN_CUDA_SOURCES", str(sources))
    monkeypatch.setenv("MONAI_SEMGAN_CACHE", str(tmp_path / "cache"))
    first = cuda_build_dir("8.0;9.0")
    assert first.parent == tmp_path / "cache" / "cuda_ops"
    assert cuda_build_dir("8.0;9.0") == first
    assert cuda_build_dir("9.0") != first
    with open(sources / "bias_act.cu", "a") as handle:
        handle.write("\n// edited\n")
    assert cuda_build_dir("8.0;9.0") != first


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_lock_is_broken(tmp_path: Path) -> None:
    """A lock whose PID is dead is removed and taken over at once."""
    lock = tmp_path / "build.lock"
    lock.write_text(f"{_dead_pid()} {time.time()}\n")
    start = time.monotonic()
    cuda_extension._acquire_lock(lock, timeout=30)
    assert time.monotonic() - start < 5
    assert int(lock.read_text().split()[0]) == os.getpid()


def test_live_lock_is_waited_on(tmp_path: Path) -> None:
    """A lock held by a live process is waited on until it goes, and reported when the wait times out."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "build.lock"
        lock.write_text(f"{holder.pid} {time.time()}\n")
        releaser = threading.Timer(1.0, lock.unlink)
        releaser.start()
        start = time.monotonic()
        cuda_extension._acquire_lock(lock, timeout=30)
        assert time.monotonic() - start >= 0.9
        assert int(lock.read_text().split()[0]) == os.getpid()
        # a lock older than the timeout counts as stale, so date this one ahead to see the wait run out
        lock.write_text(f"{holder.pid} {time.time()}\n")
        os.utime(lock, (time.time() + 60, time.time() + 60))
        with pytest.raises(CudaOpsBuildError, match="build lock"):
            cuda_extension._acquire_lock(lock, timeout=1.0)
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()


@needs_cuda_torch
@needs_nvcc
@pytest.mark.slow
def test_build_and_import(cache_dir: Path) -> None:
    """A full build into an empty cache, past a stale ``build.lock`` (dead PID) and a stale torch ``lock``, gives a
    module with the three ops; the second call loads it from the cache."""
    arch_list = "8.0;9.0"
    build_dir = cuda_build_dir(arch_list)
    assert build_dir.is_relative_to(cache_dir)
    build_dir.mkdir(parents=True)
    (build_dir / "build.lock").write_text(f"{_dead_pid()} {time.time()}\n")
    (build_dir / "lock").write_text("")  # torch's baton, left behind by a killed build
    module = build_cuda_ops(arch_list=arch_list, timeout=400)
    for name in ("upfirdn2d", "bias_act", "bias_act_grad"):
        assert callable(getattr(module, name)), name
    assert not (build_dir / "build.lock").exists()
    assert (build_dir / "build.log").is_file()
    start = time.monotonic()
    again = build_cuda_ops(arch_list=arch_list, timeout=400)
    assert time.monotonic() - start < 10
    assert callable(again.upfirdn2d)


@needs_cuda_torch
@needs_nvcc
def test_failed_build_names_log(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile error becomes a CudaOpsBuildError that says 'failed' and where the log is, and releases the lock."""
    sources = tmp_path / "broken_sources"
    sources.mkdir()
    (sources / "broken.cu").write_text("__global__ void kernel() { this is not CUDA }\n")
    (sources / "binding.cpp").write_text("int semgan_test_binding() { return 0; }\n")
    monkeypatch.setenv("MONAI_SEMGAN_CUDA_SOURCES", str(sources))
    with pytest.raises(CudaOpsBuildError, match="failed") as info:
        build_cuda_ops(arch_list="8.0", timeout=300)
    build_dir = cuda_build_dir("8.0")
    log = build_dir / "build.log"
    assert str(log) in str(info.value)
    assert log.is_file() and "broken.cu" in log.read_text()
    assert not (build_dir / "build.lock").exists()


@needs_cuda_torch
@needs_nvcc
def test_build_timeout_kills_the_compilers(cache_dir: Path) -> None:
    """A build that outlives its timeout is stopped with its whole process group (ninja, nvcc) and reported."""
    start = time.monotonic()
    with pytest.raises(CudaOpsBuildError, match="timed out after 2 s"):
        build_cuda_ops(arch_list="8.0;9.0", timeout=2)
    assert time.monotonic() - start < 30
    build_dir = cuda_build_dir("8.0;9.0")
    assert not (build_dir / "build.lock").exists()
    time.sleep(0.5)
    ps = subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, encoding="utf-8", errors="replace", check=True
    ).stdout
    assert build_dir.name not in ps  # no compiler of this build is left running


@needs_cuda_torch
@needs_nvcc
def test_unimportable_cached_module(cache_dir: Path) -> None:
    """A corrupt module in the cache is reported as CudaOpsBuildError (which the ops fall back on), not ImportError."""
    build_dir = cuda_build_dir("8.0")
    build_dir.mkdir(parents=True)
    (build_dir / f"{build_dir.name}.so").write_bytes(b"not a shared object")
    with pytest.raises(CudaOpsBuildError, match="does not import"):
        build_cuda_ops(arch_list="8.0", timeout=60)


def test_import_never_compiles(tmp_path: Path) -> None:
    """Importing the ops, and running them on CPU tensors, in a fresh interpreter writes nothing to the cache."""
    env = dict(os.environ, MONAI_SEMGAN_CACHE=str(tmp_path))
    env.pop("MONAI_SEMGAN_CUDA_OPS", None)
    code = (
        "import torch, monai_semgan.ops as ops\n"
        "x = torch.randn(1, 2, 8, 8)\n"
        "ops.upfirdn2d(x, ops.setup_kernel([1, 3, 3, 1]), up=2, padding=(2, 1, 2, 1))\n"
        "ops.bias_act(x, torch.zeros(2), act='lrelu')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> Path:
    """Forget any earlier ``cuda_ops_or_none`` result (restored afterwards) and make any build attempt fail loudly."""
    monkeypatch.setitem(cuda_extension._state, "tried", False)
    monkeypatch.setitem(cuda_extension._state, "module", None)

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_cuda_ops must not be called here")

    monkeypatch.setattr(cuda_extension, "build_cuda_ops", no_build)
    return cache_dir


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful on a machine without a GPU")
def test_no_gpu_gives_none_without_building(fresh_state: Path) -> None:
    """Without a GPU ``cuda_ops_or_none`` returns None, silently, and builds nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cuda_ops_or_none() is None
        assert cuda_ops_or_none() is None
    assert not fresh_state.exists()


def test_disabled_by_env(fresh_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``MONAI_SEMGAN_CUDA_OPS=0`` gives None without building, GPU or not."""
    monkeypatch.setenv("MONAI_SEMGAN_CUDA_OPS", "0")
    assert cuda_ops_or_none() is None
    assert not fresh_state.exists()
