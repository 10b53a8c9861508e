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
"""atomic_path and atomic_dir on real files: a complete replacement on success, the destination untouched and no
temporary left behind on failure, the suffix writers need (``.nii.gz``), and the permissions of a plain ``open()``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_semgan.atomic_write import atomic_dir, atomic_path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_path_replaces_the_destination_by_rename(tmp_path: Path) -> None:
    dest = tmp_path / "report.csv"
    dest.write_text("old\n")
    old_inode = dest.stat().st_ino
    with atomic_path(dest) as tmp:
        # a temporary in the same folder (so the rename stays on one file system), hidden, not the destination
        assert tmp.parent == tmp_path and tmp != dest and tmp.name.startswith(".report.csv.")
        tmp.write_text("new\n")
        assert dest.read_text() == "old\n"  # readers still see the whole old file while the new one is written
    assert dest.read_text() == "new\n"
    # the temporary file was renamed over the destination (a new inode), not copied into it
    assert dest.stat().st_ino != old_inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv"]


def test_atomic_path_gives_the_permissions_of_open(tmp_path: Path) -> None:
    dest = tmp_path / "a.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    mode = stat.S_IMODE(dest.stat().st_mode)
    assert mode == 0o666 & ~_umask() == stat.S_IMODE(plain.stat().st_mode)


def test_atomic_path_creates_the_folder(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "c.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("x")
    assert dest.read_text() == "x"


def test_a_failing_body_leaves_the_destination_and_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "model.pt"
    dest.write_bytes(b"complete")
    old_inode = dest.stat().st_ino
    with pytest.raises(RuntimeError, match="killed half way"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed half way")
    assert dest.read_bytes() == b"complete" and dest.stat().st_ino == old_inode
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_failing_body_creates_no_destination(tmp_path: Path) -> None:
    dest = tmp_path / "new.json"
    with pytest.raises(ValueError):
        with atomic_path(dest) as tmp:
            tmp.write_text("{")
            raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []


def test_nifti_suffix_lets_nibabel_write_gzip(tmp_path: Path) -> None:
    """nibabel picks the format from the name: the temporary must end in ``.nii.gz`` for a gzipped NIfTI."""
    dest = tmp_path / "label.nii.gz"
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    with atomic_path(dest, suffix=".nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz")
        nib.save(nib.Nifti1Image(data, affine), tmp)
    assert dest.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    img = nib.load(dest)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine)
    assert [p.name for p in tmp_path.iterdir()] == ["label.nii.gz"]


def test_atomic_dir_replaces_a_folder_whole(tmp_path: Path) -> None:
    dest = tmp_path / "case_1"
    dest.mkdir()
    (dest / "old.dcm").write_text("old")
    with atomic_dir(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.is_dir() and tmp != dest
        (tmp / "new.dcm").write_text("new")
        assert (dest / "old.dcm").exists()  # the old folder stays whole until the new one is complete
    assert [p.name for p in dest.iterdir()] == ["new.dcm"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["case_1"]


def test_a_failing_atomic_dir_leaves_the_old_folder_and_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "series"
    dest.mkdir()
    (dest / "old.dcm").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_dir(dest) as tmp:
            (tmp / "half.dcm").write_text("half")
            raise OSError("disk full")
    assert [p.name for p in dest.iterdir()] == ["old.dcm"]
    assert [p.name for p in tmp_path.iterdir()] == ["series"]


KILLED_WRITER = """
import os, signal, sys
from monai_semgan.atomic_write import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a model" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_leaves_a_recognisable_partial_that_the_next_start_removes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from monai_semgan.atomic_write import remove_partial_files

    dest = tmp_path / "models" / "model.pt"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous model")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(dest)], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in dest.parent.iterdir() if p != dest]
    assert len(left) == 1 and left[0].name.startswith(".model.pt.partial.") and left[0].stat().st_size == 12000
    assert dest.read_bytes() == b"the previous model"

    others = [dest.parent / name for name in ("notes.txt", ".hidden", ".model.pt.bak", ".model.pt.partial")]
    for path in others:
        path.write_text("keep")
    legacy = dest.parent / ".model.pt.ab12cd34"  # what 0.6.0's atomic_path named its temporaries
    legacy.write_text("partial")
    assert remove_partial_files(dest.parent) == left
    assert remove_partial_files(dest.parent, legacy_names=("model.pt",)) == [legacy]
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(["model.pt", *(p.name for p in others)])
    assert remove_partial_files(tmp_path / "missing") == []
