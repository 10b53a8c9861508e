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
"""MONAI Label training task: semi-supervised SemanticGAN training from the datastore.

The datastore's images with a final label are the labeled set; every other image is unlabeled data (where a GAN that
learns from unlabeled scans pays off). The task runs the bundle's own commands, ``train.json`` then
``train_encoder.json``, in child processes whose output streams into the server log, and publishes the new
segmenter weights where the inference task picks them up on its next request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.train import TrainTask

from monai_semgan.atomic_write import atomic_path
from monai_semgan.data.labels import LabelValues, parse_label_values

__all__ = [
    "GAN_KEYS",
    "TRAINING_KEYS",
    "SemanticGanTrainTask",
    "TrainingFailed",
    "datastore_datalist",
    "failure_reason",
]

logger = logging.getLogger(__name__)

# bundle overrides passed on to both training configs (how slices are batched), and to the GAN's only (its shape:
# the encoder and inference read the architecture from the model files)
TRAINING_KEYS = ("batch_size", "labeled_batch_size", "slices_per_volume", "num_workers")
GAN_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_multiplier", "channel_max")


# the last line of a failed bundle command: ``error: <message>`` (monai_semgan.error_report), or else a traceback's
# ``SomeError: message`` lines, of which MONAI's wrappers ("Failed to evaluate ...") say nothing
_ERROR_LINE = re.compile(r"^error: (?P<message>.+)$")
_TRACEBACK_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(?P<type>[A-Za-z_]\w*(?:Error|Exception|Exit)): (?P<message>.*)$")
_WRAPPERS = ("Failed to evaluate", "Failed to instantiate", "applying transform", "Component to instantiate")
# errors that say the data or a setting is wrong (a client error); anything else is the server's
_CLIENT_ERRORS = (
    "ValueError", "FileNotFoundError", "FileExistsError", "KeyError", "IndexError", "TypeError", "EOFError",
    "IsADirectoryError", "NotADirectoryError", "PermissionError", "ImageFileError", "ConfigError",
)  # fmt: skip


class TrainingFailed(MONAILabelException):
    """A training run of the bundle failed.

    Args:
        reason: what went wrong, in one line (the run's last error line).
        client_error: whether the data or a setting caused it (answered 422) rather than the server (500).
    """

    def __init__(self, reason: str, client_error: bool) -> None:
        super().__init__(MONAILabelError.APP_TRAIN_FAILED, reason)
        self.client_error = client_error

    @property
    def reason(self) -> str:
        """The one-line reason (MONAI Label's ``msg``)."""
        return self.msg

    def __str__(self) -> str:
        return self.msg


def failure_reason(output: str) -> tuple[str, bool]:
    """The reason a bundle command failed, read from its output, and whether it is a client error.

    Args:
        output: the command's output (stdout and stderr).

    Returns:
        ``(reason, client_error)``: the last ``error: ...`` line (what :mod:`monai_semgan.error_report` prints), else
        the last traceback line ``SomeError: message`` that is not one of MONAI's wrappers, else the last line;
        ``client_error`` when the error is a ``ValueError``, ``FileNotFoundError``, ... (bad data or settings).
    """
    lines = [line.split("\r")[-1].strip() for line in output.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        found = _ERROR_LINE.match(line)
        if found:
            message = found["message"].strip()
            typed = _TRACEBACK_LINE.match(message)
            # error_report names the type only for errors that are not the user's to fix
            return message, typed is None or typed["type"] in _CLIENT_ERRORS
    typed_lines = [m for m in map(_TRACEBACK_LINE.match, lines) if m]
    for found in reversed(typed_lines):
        if not found["message"].startswith(_WRAPPERS):
            reason = found["message"] if found["type"] in _CLIENT_ERRORS else f"{found['type']}: {found['message']}"
            return reason.strip(), found["type"] in _CLIENT_ERRORS
    return (lines[-1] if lines else "no output"), False


def _positive_int(request: Mapping[str, Any], key: str, default: int) -> int:
    value = request.get(key, default)
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, got {value!r}.") from None
    if number < 1:
        raise ValueError(f"{key} must be at least 1, got {number}.")
    return number


def datastore_datalist(datastore: Datastore) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The datastore as ``(labeled, unlabeled)`` MONAI data dicts: images with a final label, and all other images.

    Where every image has a label, ``unlabeled`` is empty and the bundle uses the labeled images as unlabeled data
    too (``train.json``: ``split[1] or split[0]``).

    Raises:
        MONAILabelException: when no image has a final label (the joint discriminator needs labeled pairs).
    """
    labeled = [{"image": d["image"], "label": d["label"]} for d in datastore.datalist() if d.get("label")]
    labeled_ids = set(datastore.get_labeled_images())
    unlabeled = [{"image": datastore.get_image_uri(i)} for i in datastore.list_images() if i not in labeled_ids]
    if not labeled:
        raise MONAILabelException(
            MONAILabelError.INVALID_INPUT, "no image in the datastore has a final label; save at least one label first"
        )
    return labeled, unlabeled


def _options(overrides: Mapping[str, Any]) -> list[str]:
    """Bundle command-line options for config overrides."""
    options = []
    for key, value in overrides.items():
        options += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return options


class SemanticGanTrainTask(TrainTask):
    """Train the GAN and then the encoder on the datastore, through the bundle's configs.

    Args:
        bundle: the bundle folder (``configs/train.json`` and its overlay ``configs/train_encoder.json``).
        workspace: where runs go (``<workspace>/train/<time>/gan``, ``.../encoder``).
        model_path: where the trained segmenter weights are published (the inference task's newest path).
        overrides: bundle overrides; those named in :data:`TRAINING_KEYS` are applied to both runs, those in
            :data:`GAN_KEYS` to the GAN's.
        modality: ``"mri"`` or ``"ct"`` (intensity normalization of the datastore's images).
        label_values: which values of the datastore's labels are the structure, in any form
            :func:`~monai_semgan.data.parse_label_values` takes (MONAI Label saves 1 for the first label).
        gan_iterations: default GAN iterations (a request's ``gan_iterations`` overrides it).
        encoder_iterations: default encoder iterations (a request's ``encoder_iterations`` overrides it).
        timeout: seconds allowed for each of the two runs.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        workspace: str | os.PathLike,
        model_path: str | os.PathLike,
        overrides: Mapping[str, Any] | None = None,
        modality: str = "mri",
        label_values: LabelValues = 1,
        gan_iterations: int = 600,
        encoder_iterations: int = 400,
        timeout: float = 24 * 3600,
    ) -> None:
        super().__init__("SemanticGAN: GAN on labeled + unlabeled datastore images, then the encoder")
        self.bundle = Path(bundle)
        self.workspace = Path(workspace)
        self.model_path = Path(model_path)
        self.overrides = {k: v for k, v in (overrides or {}).items() if k in TRAINING_KEYS}
        self.gan_overrides = {k: v for k, v in (overrides or {}).items() if k in GAN_KEYS}
        self.modality = modality
        self.label_values = json.dumps(parse_label_values(label_values))
        self.gan_iterations = gan_iterations
        self.encoder_iterations = encoder_iterations
        self.timeout = timeout
        self._stats: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        """Options shown in MONAI Label clients (and accepted in a ``/train`` request)."""
        return {"gan_iterations": self.gan_iterations, "encoder_iterations": self.encoder_iterations}

    def stats(self) -> dict[str, Any]:
        """What the last training run did."""
        return dict(self._stats)

    def _configs(self, *names: str) -> str:
        """``--config_file`` for the bundle's configs merged in order (MONAI's list syntax)."""
        return json.dumps([str(self.bundle / "configs" / name) for name in names])

    def check_request(self, request: Mapping[str, Any]) -> tuple[int, int]:
        """The request's ``(gan_iterations, encoder_iterations)``, with this task's defaults.

        Raises:
            ValueError: for a value that is not a whole number of at least 1.
        """
        return (
            _positive_int(request, "gan_iterations", self.gan_iterations),
            _positive_int(request, "encoder_iterations", self.encoder_iterations),
        )

    def _run(self, name: str, args: list[str], log_path: Path) -> None:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training", *args]
        logger.info(f"SemanticGAN {name}: {' '.join(cmd)}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        tail: deque[str] = deque(maxlen=200)  # the last lines, for the reason of a failure
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", env=env
            )
            # a watchdog, so that a run that hangs without printing is stopped too
            timed_out = threading.Event()
            watchdog = threading.Timer(self.timeout, lambda: (timed_out.set(), proc.kill()))
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line)
                    # progress bars redraw with carriage returns: report their last state
                    text = line.rstrip("\n").split("\r")[-1].strip()
                    if text:
                        logger.info(f"[{name}] {text}")
                code = proc.wait()
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if code != 0:
            if timed_out.is_set():
                reason, client_error = f"stopped after the time limit of {self.timeout:.0f} s", False
            else:
                reason, client_error = failure_reason("".join(tail))
            logger.error(f"SemanticGAN {name} failed (exit code {code}): {reason}; log: {log_path}")
            raise TrainingFailed(f"{name} failed: {reason} (log: {log_path})", client_error)

    def __call__(self, request: dict, datastore: Datastore) -> dict[str, Any]:
        """Train the GAN, then the encoder, on the datastore; publish the segmenter weights.

        Raises:
            ValueError: for bad request options (see :meth:`check_request`).
            MONAILabelException: when no image has a final label.
            TrainingFailed: when a run fails, with the reason from its last error line.
        """
        gan_iterations, encoder_iterations = self.check_request(request)
        labeled, unlabeled = datastore_datalist(datastore)
        run_dir = self.workspace / "train" / time.strftime("%Y%m%d_%H%M%S")
        run_dir.mkdir(parents=True, exist_ok=True)
        datalist = run_dir / "datalist.json"
        with atomic_path(datalist) as tmp:
            tmp.write_text(json.dumps({"training": labeled + unlabeled}, indent=2))
        common = ["--bundle_root", str(self.bundle), "--modality", self.modality, "--label_values", self.label_values]
        common += _options(self.overrides)
        start = time.time()
        self._run(
            "GAN training",
            ["--config_file", str(self.bundle / "configs" / "train.json"), "--output_dir", str(run_dir / "gan"),
             "--dataset_dir", str(datalist), "--num_labeled", "-1", "--iterations", str(gan_iterations), *common,
             *_options(self.gan_overrides)],
            run_dir / "gan.log",
        )  # fmt: skip
        self._run(
            "encoder training",
            ["--config_file", self._configs("train.json", "train_encoder.json"), "--gan_dir", str(run_dir / "gan"),
             "--output_dir", str(run_dir / "encoder"), "--iterations", str(encoder_iterations), *common],
            run_dir / "encoder.log",
        )  # fmt: skip
        trained = run_dir / "encoder" / "models" / "model.pt"
        with atomic_path(self.model_path) as tmp:
            shutil.copyfile(trained, tmp)
        self._stats = {
            "run_dir": str(run_dir),
            "model": str(self.model_path),
            "labeled": len(labeled),
            "unlabeled": len(unlabeled),
            "gan_iterations": gan_iterations,
            "encoder_iterations": encoder_iterations,
            "total_time_s": round(time.time() - start, 1),
        }
        logger.info(f"SemanticGAN training finished: {self._stats}")
        return self.stats()
