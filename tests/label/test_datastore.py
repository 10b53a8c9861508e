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
"""The confined datastore on real files: ids are names, links out of the studies folder are not served, uploads are
new files inside the folder, and entries an older server recorded outside it are dropped. (The same through a real
server: tests/label/test_label_server.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("monailabel", reason="MONAI Label is not installed (pip install -e '.[label]')")

from fastapi import HTTPException  # noqa: E402
from monailabel.datastore.local import LocalDatastore  # noqa: E402

from monai_semgan.label import ConfinedLocalDatastore, check_id  # noqa: E402

EXTENSIONS = ["*.nii.gz", "*.nii"]


def _volume(path: Path, value: float = 0.0) -> Path:
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.float32), np.eye(4)), str(path))
    return path


@pytest.fixture
def folders(tmp_path: Path) -> dict:
    studies = tmp_path / "studies"
    studies.mkdir()
    _volume(studies / "a.nii.gz")
    outside = _volume(tmp_path / "outside.nii.gz", 7.0)
    (studies / "linked.nii.gz").symlink_to(outside)
    upload = _volume(tmp_path / "upload.nii.gz", 3.0)
    return {"root": tmp_path, "studies": studies, "outside": outside, "upload": upload}


def _status(call, *args) -> int:
    with pytest.raises(HTTPException) as caught:
        call(*args)
    assert caught.value.detail
    return caught.value.status_code


@pytest.mark.parametrize(
    "value", ["../x", "/etc/passwd", "..\\x", "a/b", ".", "..", ".hidden", "", " ", "a\x00b", "x" * 201, None, 3]
)
def test_check_id_refuses_paths(value) -> None:
    assert _status(check_id, value) == 422


@pytest.mark.parametrize("value", ["image_1", "case 12", "liver-ct.v2", "%2e%2e", "a..b"])
def test_check_id_takes_names(value: str) -> None:
    assert check_id(value) == value


def test_links_out_of_the_folder_are_not_images(folders: dict) -> None:
    ds = ConfinedLocalDatastore(str(folders["studies"]), extensions=EXTENSIONS)
    assert ds.list_images() == ["a"]
    assert ds.get_image_uri("linked") == ""
    assert ds.get_image_uri("a") == str((folders["studies"] / "a.nii.gz").resolve())
    # the stock datastore serves the file the link points to
    assert "linked" in LocalDatastore(str(folders["studies"]), extensions=EXTENSIONS).list_images()


def test_reads_and_writes_refuse_paths(folders: dict) -> None:
    ds = ConfinedLocalDatastore(str(folders["studies"]), extensions=EXTENSIONS)
    upload = str(folders["upload"])
    assert _status(ds.get_image_uri, "../outside") == 422
    assert _status(ds.get_label_uri, "a", "../../x") == 422
    assert _status(ds.add_image, "../escaped", upload, {}) == 422
    assert _status(ds.add_image, "linked", upload, {}) == 409  # never written through a link
    assert _status(ds.save_label, "a", upload, "../../escaped", {}) == 422
    assert _status(ds.save_label, "missing", upload, "final", {}) == 404
    assert _status(ds.remove_image, "missing") == 404
    assert _status(ds.remove_label, "a", "final") == 404
    assert _status(ds.update_image_info, "../a", {}) == 422
    script = folders["root"] / "run.sh"
    script.write_text("echo\n")
    assert _status(ds.add_image, "run", str(script), {}) == 422
    assert (
        not list(folders["root"].glob("escaped*")) and folders["outside"].read_bytes() != folders["upload"].read_bytes()
    )
    # a proper upload lands inside
    assert ds.add_image("b", upload, {}) == "b"
    assert ds.save_label("b", upload, "final", {}) == "b"
    assert (folders["studies"] / "labels" / "final" / "b.nii.gz").is_file()
    assert [Path(d["image"]).name for d in ds.datalist()] == ["b.nii.gz"]


def test_entries_recorded_outside_the_folder_are_dropped(folders: dict) -> None:
    studies = folders["studies"]
    LocalDatastore(str(studies), extensions=EXTENSIONS)  # writes datastore_v2.json
    config = studies / "datastore_v2.json"
    # what a stock server records after PUT /datastore/image?image=../escaped
    _volume(folders["root"] / "escaped.nii.gz")
    data = json.loads(config.read_text())
    data["objects"]["../escaped"] = {"image": {"ext": ".nii.gz", "info": {}}, "labels": {}}
    config.write_text(json.dumps(data))
    ds = ConfinedLocalDatastore(str(studies), extensions=EXTENSIONS, auto_reload=False)
    assert ds.list_images() == ["a"]
    assert "../escaped" not in json.loads(config.read_text())["objects"]
