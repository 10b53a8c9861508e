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
"""A real MONAI Label server on 127.0.0.1, started with `python -m monai_semgan.label`, serving a copy of the liver_ct
bundle in a folder named `bundle` with the session's tiny model and a datastore of real CHAOS MRI volumes (phantom MRI
where ../shared is absent) plus a link to a volume outside it: /info/, inference on a datastore image and on an
upload, bad requests, paths and traversal refused, uploads kept inside the studies folder, a label and short
synchronous /train/ runs (one labeled image, a bad label, every image labeled)."""

from __future__ import annotations

import json
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

from monai_semgan.label import served_model_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"
CHAOS = ROOT.parent / "shared" / "data" / "chaos_t2spir"
TIMEOUT = 300  # seconds for any single request (inference on CPU, a short training)
MODEL = served_model_name(BUNDLE)  # from the bundle's metadata, not from its folder's name

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
    """A datastore folder with two MRI volumes (images only), their reference labels kept aside, and ``linked``: a
    symbolic link to a volume outside the folder (``outside``), which the server must not serve."""
    folder = tmp_path_factory.mktemp("studies")
    source = CHAOS if CHAOS.is_dir() else tiny_model["phantom"] / "mri"
    labels = {}
    for n in (1, 2):
        shutil.copy(source / f"image_{n}.nii.gz", folder / f"image_{n}.nii.gz")
        labels[f"image_{n}"] = source / f"label_{n}.nii.gz"
    outside = tiny_model["phantom"] / "mri" / "image_3.nii.gz"
    (folder / "linked.nii.gz").symlink_to(outside)
    return {"folder": folder, "labels": labels, "outside": outside}


@pytest.fixture(scope="module")
def bundle_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle's configs and docs copied to a folder named ``bundle``."""
    copy = tmp_path_factory.mktemp("copy") / "bundle"
    for part in ("configs", "docs"):
        shutil.copytree(BUNDLE / part, copy / part)
    return copy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: dict, studies: dict, bundle_copy: Path):
    """The server process, on the launcher's default host; always stopped (its whole process group) after the
    module."""
    port = _free_port()
    workspace = tmp_path_factory.mktemp("label_app")
    log_path = workspace / "server.log"
    cmd = [
        sys.executable, "-m", "monai_semgan.label", "--studies", str(studies["folder"]), "--bundle", str(bundle_copy),
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
        yield {"url": url, "port": port, "workspace": workspace, "log": log_path, "proc": proc}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


def _infer(
    server: dict,
    tmp_path: Path,
    image: str = "",
    upload: Path | None = None,
    model: str = MODEL,
    options: dict | None = None,
):
    params = {"output": "image"}
    if image:
        params["image"] = image
    files = {"file": (upload.name, upload.open("rb"))} if upload else None
    data = {"params": json.dumps(options)} if options else None
    response = requests.post(f"{server['url']}/infer/{model}", params=params, files=files, data=data, timeout=TIMEOUT)
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


def test_info_lists_the_model_and_labels(server: dict, bundle_copy: Path) -> None:
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    assert info["labels"] == {"liver": 1}
    # the name comes from the metadata: a copy of the bundle in a folder named "bundle" serves the same model
    assert bundle_copy.name == "bundle" and MODEL != "bundle"
    assert set(info["models"]) == {MODEL}
    assert info["models"][MODEL]["type"] == "segmentation"
    assert info["models"][MODEL]["labels"] == {"liver": 1}
    assert set(info["trainers"]) == {MODEL}
    assert info["datastore"]["total"] == 2  # the link to a file outside the studies folder is not an image


def test_the_server_listens_on_loopback_only(server: dict) -> None:
    proc_net = Path("/proc/net/tcp")
    if not proc_net.is_file():
        pytest.skip("no /proc/net/tcp on this system")
    # rows: "sl local_address rem_address st ...", addresses as hex IP:port, st 0A = LISTEN
    listening = []
    for row in proc_net.read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == server["port"]:
            listening.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    assert listening == ["127.0.0.1"]


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
    response, _ = _infer(server, tmp_path, image="image_1", options={"mode": "fast"})
    assert response.status_code == 422 and "mode" in response.json()["detail"]
    response, _ = _infer(server, tmp_path, image="image_1", options={"optimize_steps": "many"})
    assert response.status_code == 422 and "optimize_steps" in response.json()["detail"]
    response, _ = _infer(server, tmp_path, image="image_2")
    assert response.status_code == 200
    assert server["proc"].poll() is None


@pytest.mark.parametrize(
    "image",
    [
        "../../../etc/passwd", "/etc/passwd", "/etc/shadow", "..\\..\\etc\\passwd", "./image_1",
        "image_1/../image_2", "%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc%2fpasswd", "OUTSIDE", "OUTSIDE_PARENT",
    ],
)  # fmt: skip
def test_infer_takes_ids_never_paths(server: dict, studies: dict, tmp_path: Path, image: str) -> None:
    image = {"OUTSIDE": str(studies["outside"]), "OUTSIDE_PARENT": f"{studies['folder']}/../outside.nii.gz"}.get(
        image, image
    )
    # as the query parameter, sent as written (percent escapes are decoded once by the server) ...
    query = image.replace("/", "%2F") if "%" not in image else image
    response = requests.post(f"{server['url']}/infer/{MODEL}?image={query}&output=image", timeout=TIMEOUT)
    assert response.status_code == 422, response.text[-500:]
    assert "not a plain name" in response.json()["detail"]
    # ... and in the request's params, where MONAI Label lets it override the query
    response, _ = _infer(server, tmp_path, image="image_1", options={"image": image})
    assert response.status_code == 422, response.text[-500:]


def test_a_link_out_of_the_studies_folder_is_not_served(server: dict, studies: dict, tmp_path: Path) -> None:
    assert (studies["folder"] / "linked.nii.gz").resolve() == studies["outside"].resolve()
    response, _ = _infer(server, tmp_path, image="linked")
    assert response.status_code == 404 and "linked" in response.json()["detail"]
    response = requests.get(f"{server['url']}/datastore/image", params={"image": "linked"}, timeout=60)
    assert response.status_code == 404


def test_datastore_requests_stay_inside_the_studies_folder(server: dict, studies: dict, tmp_path: Path) -> None:
    url, folder = server["url"], studies["folder"]
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    outside = studies["outside"].read_bytes()
    volume = studies["labels"]["image_1"]  # any real NIfTI file

    def put(path: str, query: str, filename: str = "upload.nii.gz", field: str = "file"):
        with volume.open("rb") as f:
            return requests.put(f"{url}{path}?{query}", files={field: (filename, f)}, timeout=60)

    refused = [
        put("/datastore/", "image=../escaped"),
        put("/datastore/image", "image=..%2Fescaped"),
        put("/datastore/image", "image=%2e%2e%2fescaped"),
        put("/datastore/image", f"image={folder.parent}/escaped"),
        put("/datastore/image", "image=..%5Cescaped"),
        put("/datastore/image", "", filename="..\\..\\escaped.nii.gz"),
        put("/datastore/image", "image=linked"),  # would write through the link
        put("/datastore/image", "image=script", filename="script.sh"),
        put("/datastore/label", "image=image_1&tag=../../escaped", field="label"),
        put("/datastore/label", "image=../image_1", field="label"),
        put("/datastore/label", "image=no_such_image", field="label"),
        requests.get(f"{url}/datastore/image", params={"image": "../../../etc/passwd"}, timeout=60),
        requests.get(f"{url}/datastore/label", params={"label": "image_1", "tag": "../../.."}, timeout=60),
        requests.delete(f"{url}/datastore/image", params={"id": "../image_1"}, timeout=60),
        requests.delete(f"{url}/datastore/image", params={"id": "no_such_image"}, timeout=60),
    ]
    for response in refused:
        assert 400 <= response.status_code < 500 and response.json()["detail"], (response.url, response.text[-500:])
    assert [r.status_code for r in refused] == [422] * 6 + [409, 422, 422, 422, 404, 422, 422, 422, 404]
    assert not list(folder.parent.glob("escaped*")) and not list(folder.parent.parent.glob("escaped*"))
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert studies["outside"].read_bytes() == outside  # nothing was written through the link


def test_label_then_train_from_the_datastore(server: dict, studies: dict, tmp_path: Path) -> None:
    url = server["url"]
    # no final label yet: training is refused
    response = requests.post(f"{url}/train/{MODEL}", params={"run_sync": "true"}, json={}, timeout=60)
    assert response.status_code == 409, response.text
    label = studies["labels"]["image_1"]
    with label.open("rb") as f:
        response = requests.put(f"{url}/datastore/label", params={"image": "image_1"}, files={"label": f}, timeout=60)
    assert response.status_code == 200, response.text
    response = requests.post(
        f"{url}/train/{MODEL}", params={"run_sync": "true"}, json={"gan_iterations": 2}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text[-3000:]
    stats = response.json()
    assert stats["labeled"] == 1 and stats["unlabeled"] == 1
    trained = Path(stats["model"])
    assert trained.is_file() and trained.parent == server["workspace"] / "model" / MODEL
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


def test_train_errors_are_4xx_with_the_reason(server: dict, studies: dict, tmp_path: Path) -> None:
    url = server["url"]
    # unknown model, also for a background run (which MONAI Label would otherwise start and let fail)
    response = requests.post(f"{url}/train/no_such_model", json={}, timeout=60)
    assert response.status_code == 404 and "no_such_model" in response.json()["detail"]
    for options, word in (({"gan_iterations": "many"}, "gan_iterations"), ({"encoder_iterations": 0}, "at least 1")):
        response = requests.post(f"{url}/train/{MODEL}", params={"run_sync": "true"}, json=options, timeout=60)
        assert response.status_code == 422 and word in response.json()["detail"], response.text
    # a label file that is not a volume: the GAN run fails on it, and the answer says so
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(np.random.default_rng(1).bytes(3000))
    with corrupt.open("rb") as f:
        response = requests.put(f"{url}/datastore/label", params={"image": "image_2"}, files={"label": f}, timeout=60)
    assert response.status_code == 200, response.text
    response = requests.post(f"{url}/train/{MODEL}", params={"run_sync": "true"}, json={}, timeout=TIMEOUT)
    assert response.status_code == 422, response.text[-3000:]
    detail = response.json()["detail"]
    assert detail.startswith("GAN training failed: ") and "image_2" in detail, detail
    assert "Failed to evaluate" not in detail and "Traceback" not in detail
    assert server["proc"].poll() is None


def test_train_when_every_image_is_labeled(server: dict, studies: dict, tmp_path: Path) -> None:
    url = server["url"]
    with studies["labels"]["image_2"].open("rb") as f:
        response = requests.put(f"{url}/datastore/label", params={"image": "image_2"}, files={"label": f}, timeout=60)
    assert response.status_code == 200, response.text
    assert requests.get(f"{url}/info/", timeout=30).json()["datastore"]["completed"] == 2
    response = requests.post(f"{url}/train/{MODEL}", params={"run_sync": "true"}, json={}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text[-3000:]
    stats = response.json()
    # the labeled images are the unlabeled data too
    assert stats["labeled"] == 2 and stats["unlabeled"] == 0
    assert Path(stats["model"]).is_file()
    response, out = _infer(server, tmp_path, image="image_1", options={"save_label": True})
    assert response.status_code == 200
    _assert_same_grid(out, studies["folder"] / "image_1.nii.gz")
    assert (studies["folder"] / "labels" / "original" / "image_1.nii.gz").is_file()  # save_label still works
