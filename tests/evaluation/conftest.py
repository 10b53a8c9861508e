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
"""Fixtures of the evaluation tests: the real scans beside the repository, where present."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def chaos_dir() -> Path:
    """``../shared/data/chaos_t2spir`` (CHAOS T2-SPIR MRI, liver = 1, LAS); tests using it skip where it is missing."""
    folder = SHARED_DATA / "chaos_t2spir"
    if not (folder / "label_1.nii.gz").is_file():
        pytest.skip(f"real scans not found at {SHARED_DATA}")
    return folder
