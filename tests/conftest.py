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
"""Session fixtures shared by the bundle and MONAI Label tests: a tiny segmenter trained through the bundle's own
commands (GAN for 2 iterations, then the encoder for 4) on a small phantom data set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_semgan.data import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "liver_ct"

# a 16-px model, stated once where it is trained: every later config reads the architecture from the model file
TINY_ARCH = ["--resolution", "16", "--z_dim", "16", "--w_dim", "16", "--mapping_layers", "1",
             "--channel_base", "256", "--channel_max", "16"]  # fmt: skip
TINY_TRAIN = ["--batch_size", "2", "--slices_per_volume", "2", "--iterations_per_epoch", "2",
              "--label_values", "chaos"]  # fmt: skip


def overlay(*names: str) -> str:
    """``--config_file`` for configs merged in order (MONAI's list syntax), e.g. ``train.json`` + an overlay."""
    return "[" + ", ".join(f"'{BUNDLE / 'configs' / name}'" for name in names) + "]"


def run_bundle_command(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m monai.bundle <args> --bundle_root bundles/liver_ct`` in a subprocess from the repository root."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "monai.bundle", *args, "--bundle_root", str(BUNDLE)]
    proc = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, env=env, cwd=ROOT
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three phantom cases, CT and MRI contrast, 40 x 32 x 16 voxels."""
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(out, num_cases=3, seed=5, modalities=("ct", "mri"), shape=(40, 32, 16), spacing=(9, 9, 16))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_phantom: Path) -> dict:
    """The tiny model's run folders and weights (``model``: the segmenter), the GAN's architecture overrides
    (``arch``, for tests that train a GAN again), and ``run``: :func:`run_bundle_command` for the tests' own bundle
    commands."""
    root = tmp_path_factory.mktemp("runs")
    gan, enc = root / "train", root / "encoder"
    configs = BUNDLE / "configs"
    run_bundle_command(
        "run", "training", "--config_file", str(configs / "train.json"), "--output_dir", str(gan),
        "--dataset_dir", str(tiny_phantom / "ct"), "--num_labeled", "1", "--iterations", "2",
        "--joint_base_channels", "4", "--sample_interval", "2", *TINY_ARCH, *TINY_TRAIN,
    )  # fmt: skip
    proc = run_bundle_command(
        "run", "training", "--config_file", overlay("train.json", "train_encoder.json"), "--gan_dir", str(gan),
        "--output_dir", str(enc), "--iterations", "4", *TINY_TRAIN,
    )  # fmt: skip
    return {
        "gan": gan,
        "encoder": enc,
        "model": enc / "models" / "model.pt",
        "log": proc.stdout + proc.stderr,
        "arch": list(TINY_ARCH),
        "train": list(TINY_TRAIN),
        "phantom": tiny_phantom,
        "run": run_bundle_command,
    }
