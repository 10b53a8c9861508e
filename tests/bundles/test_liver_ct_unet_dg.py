"""The domain-generalization U-Net baseline: train_unet_dg.json over train.json + train_unet.json adds GIN + IPA
(RandGINd) to the labeled slices and names the run; everything else is the U-Net baseline's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from monai_semgan.data import RandGINd, discover_cases, write_phantom_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundles" / "liver_ct" / "configs"
FILES = ["train.json", "train_unet.json", "train_unet_dg.json"]


def overlay(*names: str) -> str:
    """``--config_file`` for bundle configs merged in order (MONAI's list syntax)."""
    return "[" + ", ".join(f"'{CONFIGS / name}'" for name in names) + "]"


def _parser() -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in FILES])
    parser["bundle_root"] = str(ROOT / "bundles" / "liver_ct")
    return parser


def test_overlay_adds_gin_to_the_labeled_slices_only(tmp_path: Path) -> None:
    write_phantom_dataset(tmp_path, 1, 0, ("ct",), shape=(32, 32, 16), spacing=(12.0, 12.0, 24.0))
    parser = _parser()
    # the nested key of the overlay lands in train_unet.json's labeled_dataset, next to its own arguments
    assert parser["labeled_dataset"]["affine_prob"] == "@affine_prob"
    assert parser["labeled_dataset"]["intensity_augmentation"]["_target_"] == "monai_semgan.data.RandGINd"
    assert "intensity_augmentation" not in parser["unlabeled_dataset"]
    parser.update({"labeled_dataset#cases": discover_cases(tmp_path / "ct"), "resolution": 16})
    parser.update({"label_values": "chaos", "gin_layers": 3, "gin_channels": 5, "ipa_prob": 1.0})
    dataset = parser.get_parsed_content("labeled_dataset")
    gin = [t for t in dataset.volumes.transform.transforms if isinstance(t, RandGINd)]
    assert len(gin) == 1 and list(gin[0].keys) == ["image"]
    assert (gin[0].gin.n_layers, gin[0].gin.n_channels, gin[0].gin.ipa_prob) == (3, 5, 1.0)
    item = dataset[0]
    assert item["image"].shape == (1, 16, 16) and set(torch.unique(item["label"]).tolist()) <= {0.0, 1.0}


def test_overlay_names_the_run_and_checks_its_settings() -> None:
    parser = _parser()
    assert parser.get_parsed_content("output_dir").endswith("/runs/unet_dg")
    # the run's name reaches the progress bar and the summary line through one key, not handler indices
    assert parser.get_parsed_content("run_name") == "U-Net (GIN+IPA)"
    handlers = parser["handlers"]
    assert handlers[5]["_target_"] == "monai_semgan.handlers.TrainingSummary" and handlers[5]["name"] == "@run_name"
    assert "make_progress_bar" in handlers[2] and "desc=@run_name" in handlers[2]
    assert handlers[3]["tag_name"] == "dice_ce"  # the loss curve keeps the baseline's tag, to compare the runs
    checked = parser.get_parsed_content("settings_check")
    assert {"gin_layers": 4, "gin_channels": 2, "ipa_prob": 0.5}.items() <= checked.items()
    assert {"weight_decay", "time_limit_s", "batch_size"} <= set(checked)
    parser["ipa_prob"] = 2
    with pytest.raises(RuntimeError) as error:  # the config's expression wraps check_settings' ValueError
        parser.get_parsed_content("settings_check")
    assert "setting ipa_prob = 2: must be a number from 0 to 1" in str(error.value.__cause__)


@pytest.mark.slow
def test_a_short_training_run(tiny_phantom: Path, tmp_path: Path) -> None:
    # the phantom alone (the session's tiny GAN is not needed): a subprocess as a user runs it
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", "training", "--bundle_root", str(ROOT / "bundles" / "liver_ct"),
        "--config_file", overlay(*FILES), "--output_dir", str(tmp_path),
        "--dataset_dir", str(tiny_phantom / "ct"), "--num_labeled", "1", "--iterations", "2",
        "--resolution", "16", "--unet_channels", "[4, 8]", "--unet_strides", "[2]", "--unet_res_units", "1",
        "--batch_size", "2", "--slices_per_volume", "2", "--iterations_per_epoch", "2", "--label_values", "chaos",
        "--gin_layers", "2", "--ipa_prob", "1.0",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "U-Net (GIN+IPA) training finished: 2 iterations" in proc.stdout
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert model["architecture"]["target"] == "monai.networks.nets.UNet"
    assert (tmp_path / "checkpoints" / "checkpoint_2.pt").exists()
