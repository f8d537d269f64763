"""`kill -9` of a training process, then the same command again: it resumes from its checkpoint
and ends with exactly the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hi3dgen import checkpoint, io

pytestmark = pytest.mark.slow

STEPS = 40
KILL_AFTER = 10  # the kill comes once a checkpoint of this step or later is written


def _cmd(out):
    return [
        sys.executable,
        "-m",
        "hi3dgen_cli",
        "train",
        "nirne",
        "--data",
        "toy",
        "--preset",
        "tiny",
        "--steps",
        str(STEPS),
        "--ckpt-every",
        "5",
        "--log-every",
        "5",
        "--no-tracking",
        "--out",
        str(out),
    ]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _weights(run):
    return torch.load(run / "model.pt", map_location="cpu", weights_only=False)["model"]


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    subprocess.run(_cmd(tmp_path / "ref"), env=_env(), check=True, capture_output=True, timeout=600)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while max(checkpoint.step_files(run / "checkpoints"), default=0) < KILL_AFTER:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its checkpoints"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.pt").exists(), "the run finished before it could be killed"
    step = checkpoint.load(run / "checkpoints" / checkpoint.LAST)["step"]
    assert KILL_AFTER <= step < STEPS

    resumed = subprocess.run(_cmd(run), env=_env(), check=True, capture_output=True, text=True, timeout=600)
    assert f"resuming from {run / 'checkpoints' / checkpoint.LAST} at step {step}" in resumed.stderr
    ref, got = _weights(tmp_path / "ref"), _weights(run)
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    assert not any(io.is_temp(p) for p in (run / "checkpoints").iterdir())
