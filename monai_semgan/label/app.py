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
"""The MONAI Label app serving a SemanticGAN bundle, configured through ``--conf`` pairs (see ``__main__``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

import monai_semgan
from monai_semgan.data.labels import parse_label_values
from monai_semgan.data.loading import unwrap_transform_error
from monai_semgan.label.infer_task import SemanticGanInferTask, bundle_labels
from monai_semgan.label.train_task import SemanticGanTrainTask

__all__ = ["SemanticGanLabelApp"]

logger = logging.getLogger(__name__)


class SemanticGanLabelApp(MONAILabelApp):
    """Serves one SemanticGAN bundle: automatic segmentation (``/infer/<model>``) and semi-supervised training from the
    datastore (``/train/<model>``), offline (nothing is looked up in the model zoo).

    ``conf`` keys (strings, as ``monailabel start_server --conf KEY VALUE`` passes them):

    - ``bundle``: the bundle folder (required).
    - ``model``: the segmenter weights to serve before any training (default ``<bundle>/runs/encoder/models/model.pt``).
    - ``overrides``: JSON object of bundle config overrides for inference and training (architecture keys, ``mode``,
      ``optimize_steps``, ...).
    - ``modality``: ``mri`` (default) or ``ct``.
    - ``label_values``: which values of the datastore's labels are the structure: ``6``, ``[1, 2]``, ``{"6": 1}`` or a
      named map such as ``btcv`` (see :func:`~monai_semgan.data.parse_label_values`; default ``1``).
    - ``gan_iterations``, ``encoder_iterations``: training length per ``/train`` request (defaults 600, 400).
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        if not conf.get("bundle"):
            raise ValueError("the SemanticGAN app needs --conf bundle <bundle folder>")
        self.bundle = Path(conf["bundle"]).resolve()
        for name in ("inference.json", "train.json", "train_encoder.json", "metadata.json"):
            if not (self.bundle / "configs" / name).is_file():
                raise FileNotFoundError(f"{self.bundle / 'configs' / name}: not a SemanticGAN bundle (config missing).")
        self.model_name = conf.get("model_name", self.bundle.name)
        self.overrides = json.loads(conf.get("overrides", "{}"))
        self.modality = conf.get("modality", "mri")
        self.overrides["modality"] = self.modality
        self.served_model = Path(conf.get("model") or self.bundle / "runs" / "encoder" / "models" / "model.pt")
        self.trained_model = Path(app_dir) / "model" / self.model_name / "model.pt"
        self.label_values = parse_label_values(conf.get("label_values", "1"))
        labels = bundle_labels(self.bundle)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"monai-semgan: {self.model_name}",
            description=f"SemanticGAN bundle {self.bundle} (monai-semgan {monai_semgan.__version__})",
            version=monai_semgan.__version__,
            labels=labels,
        )

    def init_infers(self) -> dict[str, InferTask]:
        """One segmentation model: the bundle's, replaced by the datastore-trained one once it exists."""
        task = SemanticGanInferTask(self.bundle, [self.served_model, self.trained_model], self.overrides)
        return {self.model_name: task}

    def init_trainers(self) -> dict[str, TrainTask]:
        """Semi-supervised training from the datastore."""
        task = SemanticGanTrainTask(
            self.bundle,
            Path(self.app_dir),
            self.trained_model,
            overrides=self.overrides,
            modality=self.modality,
            label_values=self.label_values,
            gan_iterations=int(self.conf.get("gan_iterations", 600)),
            encoder_iterations=int(self.conf.get("encoder_iterations", 400)),
        )
        return {self.model_name: task}

    def init_strategies(self) -> dict[str, Strategy]:
        """Which image to label next."""
        return {"random": Random(), "first": First()}

    def _check_model(self, request: dict, tasks: dict) -> None:
        model = request.get("model")
        if model not in tasks:
            raise HTTPException(status_code=404, detail=f"model {model!r} not found; this server has {sorted(tasks)}.")

    def infer(self, request: dict, datastore=None) -> Any:
        """MONAI Label's inference, with client errors answered as such: 404 for an unknown model or image id, 422 for
        a file that cannot be segmented (unreadable, not a 3-D axial volume, ...), with the reason in ``detail``."""
        self._check_model(request, self._infers)
        image = request.get("image")
        if isinstance(image, str) and image and not os.path.exists(image):
            uri = (datastore or self.datastore()).get_image_uri(image)
            if not uri or not os.path.exists(uri):
                raise HTTPException(status_code=404, detail=f"image {image!r} is not in the datastore.")
        try:
            return super().infer(request, datastore)
        except HTTPException:
            raise
        except Exception as err:
            root = unwrap_transform_error(err)
            if isinstance(root, (ValueError, FileNotFoundError, EOFError, OSError)):
                logger.warning(f"infer request rejected: {root}")
                raise HTTPException(status_code=422, detail=str(root)) from err
            raise

    def train(self, request: dict) -> Any:
        """MONAI Label's training, with 404 for an unknown model and 409 when the datastore has no final label."""
        self._check_model(request, self._trainers)
        if not self.datastore().get_labeled_images():
            raise HTTPException(
                status_code=409, detail="no image in the datastore has a final label; save at least one label first."
            )
        return super().train(request)
