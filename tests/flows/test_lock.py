"""`run_lock`: a second holder is refused with the first one's pid, and the lock goes with its
holder's death (kill -9), so a crashed run never blocks the next."""

import os
import signal
import subprocess
import sys

import pytest

from flows import project

HOLD = "from flows import project\nwith project.run_lock():\n print('locked', flush=True); input()"


def test_second_run_is_refused_until_the_holder_dies(tmp_path, monkeypatch):
    monkeypatch.setenv("HI3DGEN_ROOT", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=f"another hi3dgen run is in progress .*pid {holder.pid}"):
            with project.run_lock():
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with project.run_lock():
        assert (tmp_path / ".hi3dgen" / "run.lock").read_text() == f"pid {os.getpid()}\n"
