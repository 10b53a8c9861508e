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
"""Fixtures of the engine tests: phantom CT cases written to disk."""

from __future__ import annotations

import pytest

from monai_semgan.data import discover_cases, write_phantom_dataset


@pytest.fixture(scope="session")
def phantom_cases(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Three phantom CT cases of 32 x 32 x 16 voxels (``discover_cases`` items)."""
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(out, num_cases=3, seed=2, modalities=("ct",), shape=(32, 32, 16), spacing=(12, 12, 24))
    return discover_cases(out / "ct")
