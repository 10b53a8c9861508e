"""Fixtures of the data tests: the shared real scans (skipped when absent) and a small phantom data set."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_semgan.data.phantom import write_phantom_dataset

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests using it skip where it is missing (e.g. a PyPI install)."""
    if not (SHARED_DATA / "chaos_t2spir").is_dir():
        pytest.skip(f"real scans not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small phantom cases in CT and MRI contrast (NIfTI)."""
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(out, num_cases=3, seed=1, shape=(64, 64, 24), spacing=(6.0, 6.0, 12.0))
    return out
