"""The mission's command, `python -m monai.bundle run training --config_file bundles/liver_ct/configs/train.json`,
run for real in subprocesses with small overrides: outputs, metadata, a SIGKILL in mid-run and an exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from monai_semgan.data import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "liver_ct"
SCHEMA = ROOT.parent / "shared" / "schemas" / "meta_schema_20240725.json"
TINY = [
    "--resolution",
    "16",
    "--z_dim",
    "16",
    "--w_dim",
    "16",
    "--mapping_layers",
    "1",
    "--channel_base",
    "256",
    "--channel_max",
    "16",
    "--joint_base_channels",
    "4",
    "--batch_size",
    "2",
    "--slices_per_volume",
    "2",
    "--iterations_per_epoch",
    "2",
    "--sample_interval",
    "2",
    "--label_values",
    "chaos",
]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_phantom_dataset(out, num_cases=3, seed=4, modalities=("ct",), shape=(32, 32, 16), spacing=(12, 12, 24))
    return out / "ct"


def bundle_command(output_dir: Path, data: Path, iterations: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        str(BUNDLE / "configs" / "train.json"),
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(output_dir),
        "--dataset_dir",
        str(data),
        "--num_labeled",
        "1",
        "--iterations",
        str(iterations),
        *TINY,
        *extra,
    ]


def run_bundle(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_metadata_verifies_offline() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"schema copy not found at {SCHEMA}")
    pytest.importorskip("jsonschema")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_metadata",
            "--meta_file",
            str(BUNDLE / "configs/metadata.json"),
            "--filepath",
            str(SCHEMA),
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "metadata is verified with no error" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_training_writes_checkpoints_model_logs_and_samples(small_data: Path, tmp_path: Path) -> None:
    proc = run_bundle(bundle_command(tmp_path, small_data, 4))
    assert "SemanticGAN training finished: 4 iterations" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint_2.pt", "checkpoint_4.pt"]
    state = torch.load(tmp_path / "checkpoints" / "checkpoint_4.pt", weights_only=False)
    assert {
        "generator",
        "generator_ema",
        "image_discriminator",
        "joint_discriminator",
        "g_optimizer",
        "d_image_optimizer",
        "d_joint_optimizer",
        "grad_scaler",
        "trainer",
    } <= set(state)
    assert state["trainer"]["iteration"] == 4 and state["g_optimizer"]["state"]
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert model["architecture"]["target"] == "monai_semgan.networks.SemanticGenerator"
    assert model["architecture"]["args"]["resolution"] == 16  # as trained, so later configs need no override
    # where the model came from: data, labels and length, so a shipped file describes itself
    provenance = {k: model["metadata"][k] for k in ("modality", "resolution", "label_values", "iterations", "seed")}
    assert provenance == {"modality": "ct", "resolution": 16, "label_values": "chaos", "iterations": 4, "seed": 0}
    assert len(model["metadata"]["labeled_cases"]) == 1 and len(model["metadata"]["unlabeled_cases"]) == 2
    weights = model["state_dict"]
    assert "const" in weights and all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    assert (tmp_path / "samples" / "iter_0000004.png").stat().st_size > 0
    assert (tmp_path / "split.json").exists()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary files left behind


def _params(path: Path) -> dict:
    return torch.load(path, weights_only=False)["generator"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(small_data: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    run_bundle(bundle_command(straight, small_data, 8))

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        bundle_command(killed, small_data, 8), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    try:
        while not (killed / "checkpoints" / "checkpoint_4.pt").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(int(p.stem.split("_")[1]) for p in (killed / "checkpoints").glob("checkpoint_*.pt"))
    assert saved and max(saved) < 8

    resumed = run_bundle(bundle_command(killed, small_data, 8))
    assert f"resumed from {killed / 'checkpoints'}/checkpoint_{max(saved)}.pt" in resumed.stdout + resumed.stderr
    final_a, final_b = straight / "checkpoints" / "checkpoint_8.pt", killed / "checkpoints" / "checkpoint_8.pt"
    a, b = torch.load(final_a, weights_only=False), torch.load(final_b, weights_only=False)
    assert b["trainer"]["iteration"] == 8 and b["trainer"]["images_seen"] == a["trainer"]["images_seen"]
    for key in ("generator", "generator_ema", "joint_discriminator", "image_discriminator"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, msg=f"{key}.{name}")
    exp_a = a["g_optimizer"]["state"][0]["exp_avg_sq"]
    torch.testing.assert_close(b["g_optimizer"]["state"][0]["exp_avg_sq"], exp_a)


@pytest.mark.slow
def test_iterations_are_exact_and_resume_falls_back_past_a_truncated_checkpoint(
    small_data: Path, tmp_path: Path
) -> None:
    proc = run_bundle(bundle_command(tmp_path, small_data, 3))  # 1.5 epochs of 2 iterations
    assert "SemanticGAN training finished: 3 iterations" in proc.stdout
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_2.pt", "checkpoint_3.pt"]
    assert torch.load(checkpoints / "checkpoint_3.pt", weights_only=False)["trainer"]["iteration"] == 3

    # the newest checkpoint truncated (a full disk), and what killed writes leave behind
    newest = checkpoints / "checkpoint_3.pt"
    newest.write_bytes(newest.read_bytes()[:4096])
    partial = [checkpoints / ".checkpoint_4.pt.partial.a1b2c3d4", tmp_path / "models" / ".model.pt.partial.e5f6g7h8"]
    legacy = tmp_path / "models" / ".model.pt.x9y8z7w6"  # what 0.6.0 left when killed during export
    for path in [*partial, legacy]:
        path.write_bytes(b"\0" * 1000)
    proc = run_bundle(bundle_command(tmp_path, small_data, 5))
    log = proc.stdout + proc.stderr
    assert f"{newest}: skipped, cannot be read" in log
    assert f"resumed from {checkpoints / 'checkpoint_2.pt'} at iteration 2 (skipped checkpoint_3.pt)" in log
    assert "SemanticGAN training finished: 5 iterations" in proc.stdout
    assert not any(path.exists() for path in [*partial, legacy])
    assert torch.load(checkpoints / "checkpoint_5.pt", weights_only=False)["trainer"]["iteration"] == 5
    # the unreadable file is left for the user to look at; newer checkpoints now come first
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint_2.pt",
        "checkpoint_3.pt",
        "checkpoint_4.pt",
        "checkpoint_5.pt",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--resolution", "63", "setting resolution = 63: must be a power of two from 8 to 1024"),
        ("--batch_size", "0", "setting batch_size = 0: must be a positive integer"),
        ("--fg_ratio", "1.5", "setting fg_ratio = 1.5: must be a number from 0 to 1"),
    ],
)
def test_a_bad_setting_is_refused_before_data_or_outputs_are_written(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    out = tmp_path / "run"
    cmd = bundle_command(out, Path(""), 2)
    cmd[cmd.index("--dataset_dir") + 1] = ""  # the phantom data set, which would be written into the output folder
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*cmd, flag, value], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"error: {message} ({flag} on the command line).", proc.stderr[
        -2000:
    ]
    assert not out.exists()


@pytest.mark.slow
def test_a_missing_data_folder_is_refused_before_outputs_are_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = bundle_command(out, tmp_path / "typo", 2)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: {tmp_path / 'typo'}: data folder or datalist does not exist (dataset_dir)."
    assert not out.exists()


@pytest.mark.slow
def test_two_process_ddp_on_gloo(small_data: Path, tmp_path: Path) -> None:
    """`torchrun` with two CPU processes (gloo): both ranks finish, rank 0 alone writes the outputs."""
    configs = f"['{BUNDLE / 'configs/train.json'}','{BUNDLE / 'configs/multi_gpu_train.json'}']"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        configs,
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(tmp_path),
        "--dataset_dir",
        str(small_data),
        "--num_labeled",
        "1",
        "--iterations",
        "4",
        *TINY,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("SemanticGAN training finished: 4 iterations") == 1  # rank 0 reports
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint_2.pt", "checkpoint_4.pt"]
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1  # one event file: rank 1 wrote no log
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoints",
        "models",
        "samples",
        "split.json",
        "tensorboard",
    ]
    state = torch.load(tmp_path / "checkpoints" / "checkpoint_4.pt", weights_only=False)
    assert not any(k.startswith("module.") for k in state["generator"])  # saved unwrapped, loadable without DDP


def test_paper_override_builds_the_paper_networks() -> None:
    """train.json + train_paper.json resolve to the paper's 256 x 256 model (checked without training)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs/train.json"), str(BUNDLE / "configs/train_paper.json")])
    parser["bundle_root"] = str(BUNDLE)
    g = parser.get_parsed_content("generator")
    assert g.resolution == 256 and g.num_ws == 14 and g.w_dim == 512 and len(g.mapping.layers) == 8
    assert [g.channels(2**i) for i in range(2, 9)] == [512, 512, 512, 512, 512, 256, 128]
    d = parser.get_parsed_content("joint_discriminator")
    assert d.scales[0].layers[0][0].out_channels == 64 and len(d.scales) == 3
    assert parser.get_parsed_content("batch_size") == 16 and parser.get_parsed_content("labeled_batch_size") == 16
    # the paper's fresh latents for each of the three steps, whatever the CPU default
    assert parser.get_parsed_content("trainer#reuse_fakes") is False
