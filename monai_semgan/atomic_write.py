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
"""Write a file or folder under a temporary name beside its destination, then rename it into place.

Readers never see half a file, a crash leaves no partial output, and an existing file is replaced only by a complete
one. The result gets the permissions a plain ``open()`` would give (``mkstemp`` alone would leave 0600).

A temporary is named ``.<name>.partial.<random>``, so that what a killed process (SIGKILL, power loss) leaves behind is
recognisable: :func:`remove_partial_files` deletes such leftovers at the next start.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PARTIAL_MARKER", "atomic_dir", "atomic_path", "remove_partial_files"]

PARTIAL_MARKER = ".partial."
"""Part of every temporary name: ``.<destination name>.partial.<random>``."""

logger = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; on success rename it over ``path``.

    Args:
        path: the destination file (its folder is created).
        suffix: suffix of the temporary name, for writers that infer the format from it (e.g. ``".nii.gz"``).

    Yields:
        the temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{PARTIAL_MARKER}", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success replace ``path`` (if any) with it.

    Args:
        path: the destination folder.

    Yields:
        the temporary folder to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}{PARTIAL_MARKER}"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def remove_partial_files(folder: str | os.PathLike, legacy_names: tuple[str, ...] = ()) -> list[Path]:
    """Delete the temporaries that killed writes left in ``folder`` (not recursive): files and folders named
    ``.<name>.partial.<random>[suffix]``, and for each of ``legacy_names`` the ``.<name>.<random>`` that 0.6.0 and
    earlier wrote. Nothing else is touched.

    Call it where a run starts writing into a folder it owns (checkpoints, models, segmentation outputs); a write in
    progress in another process into the same folder would be removed too, which two runs sharing one folder would
    break anyway.

    Args:
        folder: the folder to clean; a missing folder is nothing to clean.
        legacy_names: destination names whose pre-0.7 temporaries (``.<name>.`` + 8 random characters) are removed.

    Returns:
        the paths removed (each is logged).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    legacy = [re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}$") for name in legacy_names]
    removed = []
    for entry in folder.iterdir():
        name = entry.name
        if not (name.startswith(".") and PARTIAL_MARKER in name) and not any(p.match(name) for p in legacy):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        logger.warning(f"{entry}: removed, a partial file left by an interrupted write.")
        removed.append(entry)
    return removed
