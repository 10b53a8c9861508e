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
"""Lazy, cached, time-limited build of the compiled ops in ``cuda_ops/``.

Nothing is compiled at import. The first time an op meets a CUDA tensor, :func:`cuda_ops_or_none` builds the
extension with :func:`torch.utils.cpp_extension.load` (ninja) in a child process, so that a hung compiler can be
killed after a timeout, then imports the built module. Builds are cached in a folder named by a hash of the sources,
the torch/CUDA versions and the target architectures, so an edit to a kernel rebuilds and an unchanged tree loads in
milliseconds. A lock file holding the builder's PID keeps concurrent processes (``torchrun``) from building twice; a
lock left by a killed build is detected and removed. When anything fails, one warning says why and the ops use their
PyTorch reference.

Environment variables:
    ``MONAI_SEMGAN_CUDA_OPS=0``: never build, always use the reference.
    ``MONAI_SEMGAN_CUDA_SOURCES``: folder with the ``.cu``/``.cpp`` sources (default: found beside the package).
    ``MONAI_SEMGAN_CACHE``: cache folder (default ``~/.cache/monai_semgan``).
    ``MONAI_SEMGAN_BUILD_TIMEOUT``: seconds one build may take (default 900).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "CudaOpsBuildError",
    "build_cuda_ops",
    "cuda_build_dir",
    "cuda_ops_or_none",
    "cuda_sources_dir",
    "default_arch_list",
]

_EXTENSION_PREFIX = "monai_semgan_cuda_ops"
_SOURCE_SUFFIXES = (".cpp", ".cu", ".h", ".cuh")
_LOCK_NAME = "build.lock"

_lock = threading.Lock()
_state: dict[str, object] = {"tried": False, "module": None}


class CudaOpsBuildError(RuntimeError):
    """The CUDA extension could not be built or imported; the message holds the reason and the build log's tail."""


def cuda_sources_dir() -> Path:
    """Folder holding the C++/CUDA sources.

    Returns:
        ``$MONAI_SEMGAN_CUDA_SOURCES`` if set, else ``monai_semgan/cuda_ops`` (installed wheel) or ``cuda_ops/`` at
        the repository root (source checkout, editable install).

    Raises:
        CudaOpsBuildError: when no folder with sources is found.
    """
    candidates = []
    if os.environ.get("MONAI_SEMGAN_CUDA_SOURCES"):
        candidates.append(Path(os.environ["MONAI_SEMGAN_CUDA_SOURCES"]))
    package_dir = Path(__file__).resolve().parent.parent
    candidates += [package_dir / "cuda_ops", package_dir.parent / "cuda_ops"]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.cu")):
            return folder
    raise CudaOpsBuildError(f"no CUDA sources (*.cu) found in any of: {', '.join(str(c) for c in candidates)}.")


def default_arch_list() -> str:
    """Architectures to compile for: ``$TORCH_CUDA_ARCH_LIST``, else the visible GPUs', else ``8.0;9.0``."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps)
    return "8.0;9.0"


def _source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in _SOURCE_SUFFIXES)


def _build_key(files: list[Path], arch_list: str) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"{torch.__version__}|{torch.version.cuda}|{arch_list}|{sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


def cuda_build_dir(arch_list: str | None = None) -> Path:
    """Cache folder of the build that matches the current sources, torch and architectures.

    Args:
        arch_list: ``TORCH_CUDA_ARCH_LIST`` value; default :func:`default_arch_list`.

    Returns:
        the folder (not necessarily existing yet).
    """
    arch_list = arch_list or default_arch_list()
    key = _build_key(_source_files(cuda_sources_dir()), arch_list)
    root = Path(os.environ.get("MONAI_SEMGAN_CACHE", Path.home() / ".cache" / "monai_semgan"))
    return root / "cuda_ops" / f"{_EXTENSION_PREFIX}_{key}"


def _cuda_home() -> str | None:
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    # without CUDA_HOME torch guesses from the nvcc on PATH, which goes wrong for /usr/local/bin/nvcc symlinks
    for candidate in ("/usr/local/cuda",):
        if Path(candidate, "bin", "nvcc").exists():
            return candidate
    nvcc = shutil.which("nvcc")
    return str(Path(nvcc).resolve().parent.parent) if nvcc else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire_lock(lock_path: Path, timeout: float) -> None:
    """Take the build lock; break it when its holder is dead or it is older than ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock_path.read_text().split()[0])
                age = time.time() - lock_path.stat().st_mtime
            except (OSError, ValueError, IndexError):
                pid, age = -1, 0.0
                if lock_path.exists() and time.time() - lock_path.stat().st_mtime > 5:
                    pid = 0  # unreadable and not just being written: stale
            if pid == 0 or (pid > 0 and not _pid_alive(pid)) or age > timeout:
                lock_path.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                raise CudaOpsBuildError(
                    f"timed out after {timeout:.0f} s waiting for the build lock {lock_path}."
                ) from None
            time.sleep(0.5)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()} {time.time()}\n")
        return


def _import_built(build_dir: Path, name: str) -> ModuleType | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES + [".so"]:
        path = build_dir / f"{name}{suffix}"
        if path.exists():
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    return None


_BUILD_SCRIPT = """
import json, sys
import torch.utils.cpp_extension as ext
args = json.loads(sys.argv[1])
ext.load(name=args["name"], sources=args["sources"], build_directory=args["build_dir"],
         extra_cflags=["-O3"], extra_cuda_cflags=["-O3", "--use_fast_math"], extra_include_paths=[args["include"]],
         with_cuda=True, is_python_module=True, verbose=True)
"""


def build_cuda_ops(timeout: float | None = None, verbose: bool = False, arch_list: str | None = None) -> ModuleType:
    """Build (or load from the cache) and import the CUDA extension. Needs nvcc and a CUDA build of torch, not a GPU.

    Args:
        timeout: seconds the compiler may run; default ``$MONAI_SEMGAN_BUILD_TIMEOUT`` or 900.
        verbose: print the build log.
        arch_list: ``TORCH_CUDA_ARCH_LIST`` for the build; default :func:`default_arch_list`.

    Returns:
        the imported extension module (functions ``upfirdn2d``, ``bias_act``, ``bias_act_grad``).

    Raises:
        CudaOpsBuildError: when torch has no CUDA, nvcc or ninja is missing, the build fails or times out, or the
            built module does not import.
    """
    if torch.version.cuda is None:
        raise CudaOpsBuildError(f"torch {torch.__version__} is a CPU-only build; the CUDA ops need a CUDA build.")
    if timeout is None:
        timeout = float(os.environ.get("MONAI_SEMGAN_BUILD_TIMEOUT", 900))
    cuda_home = _cuda_home()
    if cuda_home is None:
        raise CudaOpsBuildError("nvcc not found: set CUDA_HOME or put nvcc on PATH.")
    if shutil.which("ninja") is None and not Path(sys.executable).with_name("ninja").exists():
        raise CudaOpsBuildError("ninja not found: `pip install ninja`.")
    arch_list = arch_list or default_arch_list()
    sources_dir = cuda_sources_dir()
    files = _source_files(sources_dir)
    build_dir = cuda_build_dir(arch_list)
    name = build_dir.name
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        module = _import_built(build_dir, name)
    except ImportError as err:
        raise CudaOpsBuildError(f"cached extension in {build_dir} does not import: {err}") from err
    if module is not None:
        return module
    lock_path = build_dir / _LOCK_NAME
    _acquire_lock(lock_path, timeout)
    try:
        module = _import_built(build_dir, name)  # another process may have built it while we waited
        if module is not None:
            return module
        # torch's own lock from a killed build would block ninja forever; we hold ours, so any such file is stale
        (build_dir / "lock").unlink(missing_ok=True)
        env = dict(os.environ, CUDA_HOME=cuda_home, TORCH_CUDA_ARCH_LIST=arch_list)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        args = {
            "name": name,
            "sources": [str(p) for p in files if p.suffix in (".cpp", ".cu")],
            "build_dir": str(build_dir),
            "include": str(sources_dir),
        }
        # a session of its own, so that a timeout kills ninja and nvcc too, not only the Python child
        proc = subprocess.Popen(
            [sys.executable, "-c", _BUILD_SCRIPT, json.dumps(args)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CudaOpsBuildError(f"build of {name} timed out after {timeout:.0f} s in {build_dir}.") from err
        (build_dir / "build.log").write_text(log)
        if verbose:
            print(log)
        if proc.returncode != 0:
            raise CudaOpsBuildError(
                f"build of {name} failed (exit {proc.returncode}); log {build_dir / 'build.log'}:\n{log[-3000:]}"
            )
        module = _import_built(build_dir, name)
        if module is None:
            raise CudaOpsBuildError(f"build of {name} finished but no importable module is in {build_dir}.")
        return module
    except ImportError as err:
        raise CudaOpsBuildError(f"built extension in {build_dir} does not import: {err}") from err
    finally:
        lock_path.unlink(missing_ok=True)


def cuda_ops_or_none() -> ModuleType | None:
    """The compiled ops, built on first call; ``None`` (after one warning) when they cannot be had.

    Returns:
        the extension module, or ``None`` when ``MONAI_SEMGAN_CUDA_OPS=0``, no GPU is visible, or the build failed.
    """
    if _state["tried"]:
        return _state["module"]  # type: ignore[return-value]
    with _lock:
        if _state["tried"]:
            return _state["module"]  # type: ignore[return-value]
        module = None
        if os.environ.get("MONAI_SEMGAN_CUDA_OPS", "1") == "0":
            pass
        elif not torch.cuda.is_available():
            pass
        else:
            try:
                module = build_cuda_ops()
            except (CudaOpsBuildError, OSError) as err:
                warnings.warn(
                    f"monai_semgan: CUDA ops unavailable, using the PyTorch reference ops instead. {err}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        _state["module"] = module
        _state["tried"] = True
        return module
