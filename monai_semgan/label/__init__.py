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
from monai_semgan.label.infer_task import SemanticGanInferTask, bundle_labels, read_bundle_config
from monai_semgan.label.train_task import SemanticGanTrainTask, datastore_datalist

__all__ = [
    "SemanticGanInferTask",
    "SemanticGanLabelApp",
    "SemanticGanTrainTask",
    "bundle_labels",
    "datastore_datalist",
    "read_bundle_config",
]
