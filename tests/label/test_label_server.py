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
"""A real MONAI Label server on 127.0.0.1, started with `python -m monai_semgan.label`, serving the liver_ct bundle
with the session's tiny model and a datastore of real CHAOS MRI volumes (phantom MRI where ../shared is absent):
/info/, inference on a datastore image and on an upload, bad requests, a label and a short synchronous /train/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("monailabel", reason="MONAI Label is not installed (pip install -e '.[label]')")
requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"
CHAOS = ROOT.parent / "shared" / "data" / "chaos_t2spir"
TIMEOUT = 300  # seconds for any single request (inference on CPU, a short training)

# a MONAI Label server in a subprocess, serving the tiny model the bundle commands train (tests/conftest.py)
pytestmark = pytest.mark.slow


def _tail(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(arch: list[str]) -> list[str]:
    pairs = [f"{arch[i][2:]}={arch[i + 1]}" for i in range(0, len(arch), 2)]
    return [*pairs, "batch_size=2", "slices_per_volume=2", "iterations_per_epoch=2"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, tiny_model: dict) -> dict:
    """A datastore folder with two MRI volumes (images only) and their reference labels kept aside."""
    folder = tmp_path_factory.mktemp("studies")
    source = CHAOS if CHAOS.is_dir() else tiny_model["phantom"] / "mri"
    labels = {}
    for n in (1, 2):
        shutil.copy(source / f"image_{n}.nii.gz", folder / f"image_{n}.nii.gz")
        labels[f"image_{n}"] = source / f"label_{n}.nii.gz"
    return {"folder": folder, "labels": labels}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: dict, studies: dict):
    """The server process; always stopped (its whole process group) after the module."""
    port = _free_port()
    workspace = tmp_path_factory.mktemp("label_app")
    log_path = workspace / "server.log"
    cmd = [
        sys.executable, "-m", "monai_semgan.label", "--studies", str(studies["folder"]), "--bundle", str(BUNDLE),
        "--model", str(tiny_model["model"]), "--workspace", str(workspace), "--port", str(port), "--mode", "quick",
        "--gan_iterations", "2", "--encoder_iterations", "2", "--set", *_overrides(tiny_model["arch"]),
    ]  # fmt: skip
    log = log_path.open("w")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /info/ within 180 s:\n{_tail(log_path)}")
            time.sleep(1)
        yield {"url": url, "workspace": workspace, "log": log_path, "proc": proc}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


def _infer(server: dict, tmp_path: Path, image: str = "", upload: Path | None = None, model: str = "liver_ct"):
    params = {"output": "image"}
    if image:
        params["image"] = image
    files = {"file": (upload.name, upload.open("rb"))} if upload else None
    response = requests.post(f"{server['url']}/infer/{model}", params=params, files=files, timeout=TIMEOUT)
    out = tmp_path / f"result_{time.monotonic_ns()}.nii.gz"
    if response.status_code == 200:
        out.write_bytes(response.content)
    return response, out


def _assert_same_grid(mask_path: Path, image_path: Path) -> np.ndarray:
    mask, image = nib.load(mask_path), nib.load(image_path)
    assert mask.shape == image.shape
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    return values


def test_info_lists_the_model_and_labels(server: dict) -> None:
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    assert info["labels"] == {"liver": 1}
    assert set(info["models"]) == {"liver_ct"}
    assert info["models"]["liver_ct"]["type"] == "segmentation"
    assert info["models"]["liver_ct"]["labels"] == {"liver": 1}
    assert set(info["trainers"]) == {"liver_ct"}
    assert info["datastore"]["total"] == 2


def test_infer_a_datastore_image(server: dict, studies: dict, tmp_path: Path) -> None:
    response, out = _infer(server, tmp_path, image="image_1")
    assert response.status_code == 200, response.text[-2000:]
    _assert_same_grid(out, studies["folder"] / "image_1.nii.gz")


def test_infer_an_uploaded_file(server: dict, tiny_model: dict, tmp_path: Path) -> None:
    upload = tiny_model["phantom"] / "mri" / "image_3.nii.gz"
    response, out = _infer(server, tmp_path, upload=upload)
    assert response.status_code == 200, response.text[-2000:]
    _assert_same_grid(out, upload)


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server: dict, tmp_path: Path) -> None:
    response, _ = _infer(server, tmp_path, image="no_such_image")
    assert response.status_code == 404 and "no_such_image" in response.json()["detail"]
    response, _ = _infer(server, tmp_path, image="image_1", model="no_such_model")
    assert response.status_code == 404 and "no_such_model" in response.json()["detail"]
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2000))
    response, _ = _infer(server, tmp_path, upload=corrupt)
    assert response.status_code == 422 and "cannot read" in response.json()["detail"]
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 8), np.float32), np.eye(4)), str(flat))
    response, _ = _infer(server, tmp_path, upload=flat)
    assert response.status_code == 422 and "constant image" in response.json()["detail"]
    response, _ = _infer(server, tmp_path, image="image_2")
    assert response.status_code == 200
    assert server["proc"].poll() is None


def test_label_then_train_from_the_datastore(server: dict, studies: dict, tmp_path: Path) -> None:
    url = server["url"]
    # no final label yet: training is refused
    response = requests.post(f"{url}/train/liver_ct", params={"run_sync": "true"}, json={}, timeout=60)
    assert response.status_code == 409, response.text
    label = studies["labels"]["image_1"]
    with label.open("rb") as f:
        response = requests.put(f"{url}/datastore/label", params={"image": "image_1"}, files={"label": f}, timeout=60)
    assert response.status_code == 200, response.text
    response = requests.post(
        f"{url}/train/liver_ct", params={"run_sync": "true"}, json={"gan_iterations": 2}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text[-3000:]
    stats = response.json()
    assert stats["labeled"] == 1 and stats["unlabeled"] == 1
    trained = Path(stats["model"])
    assert trained.is_file() and trained.parent == server["workspace"] / "model" / "liver_ct"
    assert (Path(stats["run_dir"]) / "gan" / "split.json").is_file()
    log = server["log"].read_text(encoding="utf-8", errors="replace")
    assert "[GAN training]" in log and "[encoder training]" in log  # progress reached the server log
    # the next inference runs on the datastore-trained weights
    response, out = _infer(server, tmp_path, image="image_2")
    assert response.status_code == 200
    _assert_same_grid(out, studies["folder"] / "image_2.nii.gz")
    assert f"Infer model path: {trained}" in server["log"].read_text(encoding="utf-8", errors="replace")
    response = requests.post(f"{url}/train/no_such_model", params={"run_sync": "true"}, json={}, timeout=60)
    assert response.status_code == 404
