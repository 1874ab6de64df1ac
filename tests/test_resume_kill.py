"""A finetune stage killed with SIGKILL mid-epoch resumes from its checkpoint to the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from modaclip.model.saved_model import WEIGHTS_FILE
from modaclip.train.trainer import CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
PARAMS = """
model:
  arch: modaclip-micro
train:
  epochs: 2
  batch_size: 16
  warmup_steps: 2
  checkpoint_every_steps: 2
"""


def finetune_command(params: Path, data: Path, run: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "stages" / "finetune.py"),
        "--params",
        str(params),
        "--data",
        str(data),
        "--out",
        str(run / "model"),
        "--checkpoints",
        str(run / "checkpoints"),
        "--curves",
        str(run / "curves"),
        "--metrics",
        str(run / "train.json"),
    ]


def test_sigkill_mid_epoch_then_rerun_equals_an_uninterrupted_run(clean_dir: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(finetune_command(params, clean_dir, straight), env=env, check=True, capture_output=True)

    process = subprocess.Popen(
        finetune_command(params, clean_dir, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = killed / "checkpoints" / CHECKPOINT
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    state = torch.load(checkpoint, weights_only=False)["state"]
    assert state["epoch"] == 0 and state["step_in_epoch"] == 2  # killed mid-epoch, after step 2
    assert not (killed / "model").exists()

    rerun = subprocess.run(
        finetune_command(params, clean_dir, killed), env=env, check=True, capture_output=True, text=True
    )
    assert "resuming from" in rerun.stderr and "at epoch 1, step 2" in rerun.stderr
    expected = load_file(straight / "model" / WEIGHTS_FILE)
    resumed = load_file(killed / "model" / WEIGHTS_FILE)
    assert expected.keys() == resumed.keys()
    for name, value in expected.items():
        assert torch.equal(resumed[name], value), name
