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
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.train import TrainTask

from monai_semgan.atomic_write import atomic_path
from monai_semgan.data.labels import LabelValues, parse_label_values

__all__ = ["GAN_KEYS", "TRAINING_KEYS", "SemanticGanTrainTask", "datastore_datalist"]

logger = logging.getLogger(__name__)

# bundle overrides passed on to both training configs (how slices are batched), and to the GAN's only (its shape:
# the encoder and inference read the architecture from the model files)
TRAINING_KEYS = ("batch_size", "labeled_batch_size", "slices_per_volume", "num_workers")
GAN_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_multiplier", "channel_max")


def datastore_datalist(datastore: Datastore) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The datastore as ``(labeled, unlabeled)`` MONAI data dicts: images with a final label, and all other images.

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

    def _run(self, name: str, args: list[str], log_path: Path) -> None:
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training", *args]
        logger.info(f"SemanticGAN {name}: {' '.join(cmd)}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", env=env
            )
            # a watchdog, so that a run that hangs without printing is stopped too
            watchdog = threading.Timer(self.timeout, proc.kill)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
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
            raise MONAILabelException(
                MONAILabelError.SERVER_ERROR, f"SemanticGAN {name} failed (exit code {code}); see {log_path}"
            )

    def __call__(self, request: dict, datastore: Datastore) -> dict[str, Any]:
        labeled, unlabeled = datastore_datalist(datastore)
        run_dir = self.workspace / "train" / time.strftime("%Y%m%d_%H%M%S")
        run_dir.mkdir(parents=True, exist_ok=True)
        datalist = run_dir / "datalist.json"
        with atomic_path(datalist) as tmp:
            tmp.write_text(json.dumps({"training": labeled + unlabeled}, indent=2))
        gan_iterations = int(request.get("gan_iterations", self.gan_iterations))
        encoder_iterations = int(request.get("encoder_iterations", self.encoder_iterations))
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
