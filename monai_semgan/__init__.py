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
"""monai-semgan: SemanticGAN (joint image-label StyleGAN2) for semi-supervised, out-of-domain medical segmentation.

The package reads in the order data flows: ``ops`` and ``networks`` (the models), ``losses``, ``data`` (load and
transform), ``engines`` and ``handlers`` (train), ``inversion`` (embed images into W+), ``segmentation`` (segment
volumes slice-wise); ``settings`` and ``error_report`` check a bundle's settings before it writes anything and report
an error in one line.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.8.1"

# Subpackages in data-flow order; imported on first attribute access, so `import monai_semgan` stays cheap and
# bundle configs can write `$import monai_semgan` then `monai_semgan.data.discover_cases(...)`.
_SUBPACKAGES = (
    "ops",
    "networks",
    "losses",
    "data",
    "engines",
    "handlers",
    "inversion",
    "segmentation",
    "settings",
    "error_report",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
