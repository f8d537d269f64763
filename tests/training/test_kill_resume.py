"""`kill -9` of a training process, then the same command again: it resumes from its checkpoint
and ends with exactly the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.slow

STEPS = 40


def _cmd(out):
    return [sys.executable, "-m", "hi3dgen_cli", "train", "nirne", "--data", "toy", "--preset", "tiny",
            "--steps", str(STEPS), "--ckpt-every", "5", "--log-every", "5", "--no-tracking", "--out", str(out)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _weights(run):
    return torch.load(run / "model.pt", map_location="cpu", weights_only=False)["model"]


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    subprocess.run(_cmd(tmp_path / "ref"), env=_env(), check=True, capture_output=True, timeout=600)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.pt").exists(), "the run finished before it could be killed"
    step = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
    assert 0 < step < STEPS

    subprocess.run(_cmd(run), env=_env(), check=True, capture_output=True, timeout=600)
    ref, resumed = _weights(tmp_path / "ref"), _weights(run)
    assert ref.keys() == resumed.keys()
    for k in ref:
        assert torch.equal(ref[k], resumed[k]), k
