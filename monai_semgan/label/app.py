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
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

import monai_semgan
from monai_semgan.data.labels import parse_label_values
from monai_semgan.data.loading import unwrap_transform_error
from monai_semgan.label.datastore import ConfinedLocalDatastore, check_id, is_inside
from monai_semgan.label.infer_task import SemanticGanInferTask, bundle_labels, served_model_name
from monai_semgan.label.train_task import SemanticGanTrainTask, TrainingFailed

__all__ = ["SemanticGanLabelApp"]

logger = logging.getLogger(__name__)

# the file MONAI Label's /infer endpoint writes an upload to: tempfile.NamedTemporaryFile(suffix=<upload's suffixes>)
_UPLOAD_NAME = re.compile(r"tmp[a-z0-9_]{8}(\..*)?")
_MODES = ("quick", "optimize")


def _flag(value: Any) -> bool:
    """A request's true / false option, given as a bool or a string (``"false"`` is false)."""
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


class SemanticGanLabelApp(MONAILabelApp):
    """Serves one SemanticGAN bundle: automatic segmentation (``/infer/<model>``) and semi-supervised training from the
    datastore (``/train/<model>``), offline (nothing is looked up in the model zoo).

    The app reads and writes only inside its datastore: a request names a datastore image by its id, never by a path
    (see :class:`~monai_semgan.label.datastore.ConfinedLocalDatastore`); the only paths ``/infer`` accepts are the
    files MONAI Label itself writes for an upload or a session. Every refused request gets a 4xx with the reason.

    ``conf`` keys (strings, as ``monailabel start_server --conf KEY VALUE`` passes them):

    - ``bundle``: the bundle folder (required).
    - ``model_name``: the served model's name (default: from the bundle's ``configs/metadata.json``, see
      :func:`~monai_semgan.label.served_model_name`).
    - ``model``: the segmenter weights to serve before any training (default ``<bundle>/models/model.pt``, the
      bundle's shipped model).
    - ``overrides``: JSON object of bundle config overrides for inference and training (architecture keys, ``mode``,
      ``optimize_steps``, ...).
    - ``modality``: ``mri`` (default) or ``ct``.
    - ``label_values``: which values of the datastore's labels are the structure: ``6``, ``[1, 2]``, ``{"6": 1}`` or a
      named map such as ``btcv`` (see :func:`~monai_semgan.data.parse_label_values`; default ``1``).
    - ``gan_iterations``, ``encoder_iterations``: training length per ``/train`` request (defaults 600, 400).

    Raises:
        ValueError: without ``bundle``, or with a ``model_name`` that is not a plain name.
        FileNotFoundError: when the bundle lacks one of its configs.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        if not conf.get("bundle"):
            raise ValueError("the SemanticGAN app needs --conf bundle <bundle folder>")
        self.bundle = Path(conf["bundle"]).resolve()
        for name in ("inference.json", "train.json", "train_encoder.json", "metadata.json"):
            if not (self.bundle / "configs" / name).is_file():
                raise FileNotFoundError(f"{self.bundle / 'configs' / name}: not a SemanticGAN bundle (config missing).")
        self.model_name = served_model_name(self.bundle, conf.get("model_name"))
        self.overrides = json.loads(conf.get("overrides", "{}"))
        self.modality = conf.get("modality", "mri")
        self.overrides["modality"] = self.modality
        self.served_model = Path(conf.get("model") or self.bundle / "models" / "model.pt")
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

    def init_datastore(self) -> Datastore:
        """A local datastore confined to the studies folder (remote datastores as MONAI Label makes them)."""
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        logger.info(f"Init Datastore for: {self.studies} (confined to the folder)")
        return ConfinedLocalDatastore(
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
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

    def _check_model(self, model: Any, tasks: dict) -> None:
        if model not in tasks:
            raise HTTPException(status_code=404, detail=f"model {model!r} not found; this server has {sorted(tasks)}.")

    def bundle_path(self, model: Any) -> None:
        """None (the bundle runs from its folder). MONAI Label calls this in the server process before it starts a
        background ``/train`` (or batch inference) for ``model``, the one place an unknown model can still get its 404
        instead of a failed background task."""
        if model is not None:
            self._check_model(model, {**self._trainers, **self._infers})
        return None

    # --- /infer --------------------------------------------------------------------------------------------------

    def _is_server_file(self, path: str) -> bool:
        """Whether ``path`` is a file MONAI Label wrote for this request: an upload (a fresh ``tmpXXXXXXXX<ext>`` in
        the temporary folder, owned by this process's user) or a session's image (inside the session store)."""
        if not os.path.isabs(path) or not os.path.isfile(path):
            return False
        sessions = self.sessions()
        if sessions is not None and is_inside(path, sessions.store_path):
            return True
        upload = Path(path)
        return (
            _UPLOAD_NAME.fullmatch(upload.name) is not None
            and not upload.is_symlink()
            and os.path.realpath(upload.parent) == os.path.realpath(tempfile.gettempdir())
            and (not hasattr(os, "getuid") or upload.stat().st_uid == os.getuid())
        )

    def _check_infer_options(self, request: dict) -> None:
        mode = request.get("mode")
        if mode is not None and mode not in _MODES:
            raise HTTPException(status_code=422, detail=f"mode must be one of {list(_MODES)}, got {mode!r}.")
        steps = request.get("optimize_steps")
        if steps is not None:
            try:
                ok = int(steps) == float(steps) and int(steps) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise HTTPException(
                    status_code=422, detail=f"optimize_steps must be a whole number >= 0, got {steps!r}."
                )

    def infer(self, request: dict, datastore: Datastore | None = None) -> Any:
        """MONAI Label's inference on a datastore image (by id) or an uploaded file, with client errors answered as
        such (see ``docs/monailabel.md``): 404 for an unknown model or image, 422 for an id that is a path, bad options
        or a file that cannot be segmented (unreadable, not a 3-D axial volume, ...), 403 for a datastore file that
        resolves outside the studies folder, with the reason in ``detail``."""
        self._check_model(request.get("model"), self._infers)
        self._check_infer_options(request)
        datastore = datastore or self.datastore()
        request = dict(request)
        image = request.get("image")
        image_id = None
        if not isinstance(image, str) or not image:
            raise HTTPException(status_code=422, detail="no image: give a datastore image id or upload a file.")
        if not self._is_server_file(image):
            # a datastore id: resolved here, so that MONAI Label never takes it for a path (it tries os.path.exists)
            image_id = check_id(image)
            uri = datastore.get_image_uri(image_id)
            if not uri or not os.path.isfile(uri):
                raise HTTPException(status_code=404, detail=f"image {image_id!r} is not in the datastore.")
            request["image"] = uri
        save_label = image_id is not None and _flag(request.pop("save_label", False))
        try:
            result = super().infer(request, datastore)
        except HTTPException:
            raise
        except Exception as err:
            root = unwrap_transform_error(err)
            if isinstance(root, (ValueError, FileNotFoundError, EOFError, OSError)):
                logger.warning(f"infer request rejected: {root}")
                raise HTTPException(status_code=422, detail=str(root)) from err
            logger.exception("inference failed")
            raise HTTPException(status_code=500, detail=f"inference failed: {type(root).__name__}: {root}") from err
        if save_label and result.get("file"):
            # what MONAI Label does for an image id, done here since the request now carries the file
            tag = request.get("label_tag") or DefaultLabelTag.ORIGINAL.value
            info = {"model": request.get("model"), "params": result.get("params")}
            result["label"] = datastore.save_label(image_id, result["file"], tag, info)
            result["tag"] = tag
        return result

    # --- /train --------------------------------------------------------------------------------------------------

    def train(self, request: dict) -> Any:
        """MONAI Label's training, with client errors answered as such: 404 for an unknown model, 422 for bad options
        or a run that fails on the data or a setting (with the run's last error line), 409 when the datastore has no
        final label. A failure that is the server's (out of memory, time limit) is a 500 with the reason."""
        model = request.get("model")
        self._check_model(model, self._trainers)
        task = self._trainers[model]
        try:
            task.check_request(request)
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        if not self.datastore().get_labeled_images():
            raise HTTPException(
                status_code=409, detail="no image in the datastore has a final label; save at least one label first."
            )
        try:
            return super().train(request)
        except HTTPException:
            raise
        except TrainingFailed as err:
            raise HTTPException(status_code=422 if err.client_error else 500, detail=err.reason) from err
        except MONAILabelException as err:
            status = 422 if err.error == MONAILabelError.INVALID_INPUT else 500
            raise HTTPException(status_code=status, detail=err.msg) from err
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
