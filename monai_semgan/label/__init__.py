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
"""Serve: a MONAI Label app for SemanticGAN bundles (``pip install "monai-semgan[label]"``).

Start it with ``python -m monai_semgan.label --studies DIR --bundle bundles/liver_ct``; see ``docs/monailabel.md``.
"""

from __future__ import annotations

try:
    import monailabel  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError('the MONAI Label app needs monailabel: pip install "monai-semgan[label]"') from err

from monai_semgan.label.app import SemanticGanLabelApp
from monai_semgan.label.datastore import ConfinedLocalDatastore, check_id
from monai_semgan.label.infer_task import SemanticGanInferTask, bundle_labels, read_bundle_config, served_model_name
from monai_semgan.label.train_task import SemanticGanTrainTask, TrainingFailed, datastore_datalist, failure_reason

__all__ = [
    "ConfinedLocalDatastore",
    "SemanticGanInferTask",
    "SemanticGanLabelApp",
    "SemanticGanTrainTask",
    "TrainingFailed",
    "bundle_labels",
    "check_id",
    "datastore_datalist",
    "failure_reason",
    "read_bundle_config",
    "served_model_name",
]
