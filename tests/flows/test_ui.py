"""`hi3dgen ui`: a busy port is a clear error, and the UI opens on the training runs (MLflow's
"Model training" view, not its GenAI view), checked in a headless Chromium with a screenshot."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from hi3dgen_cli import main

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_busy_port_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HI3DGEN_ROOT", str(tmp_path))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert not (tmp_path / ".hi3dgen").exists()  # refused before touching the project


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium for the headless check (Debian: apt-get install chromium)")
def test_ui_opens_on_the_training_runs(tmp_path):
    env = {
        **os.environ,
        "HI3DGEN_ROOT": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / '.hi3dgen' / 'mlflow.db'}",
    }
    subprocess.run(
        [sys.executable, "-c", "from hi3dgen import tracking\nwith tracking.run('end_to_end'): pass"],
        env=env,
        check=True,
        timeout=120,
    )
    with socket.create_server(("127.0.0.1", 0)) as free:
        port = free.getsockname()[1]
    ui = subprocess.Popen(
        [sys.executable, "-m", "hi3dgen_cli", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = ui.stdout.readline().split(" at ")[-1].strip()
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/"), url
        while True:  # until the server answers (or has died)
            assert ui.poll() is None, "hi3dgen ui exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        browser = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,900",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"--screenshot={tmp_path / 'ui.png'}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert browser.returncode == 0, browser.stderr[-2000:]
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    print(f"screenshot: {tmp_path / 'ui.png'}")
    assert (tmp_path / "ui.png").stat().st_size > 0
    assert "end_to_end" in browser.stdout  # the run table of the training view lists the run
    assert "Evaluation runs" not in browser.stdout  # nor the GenAI sidebar
