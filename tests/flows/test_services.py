"""A configured service that is not there gives a clear error before any work starts."""

import os
import socket

import pytest

from flows import project
from hi3dgen_cli import main


@pytest.fixture(autouse=True)
def project_root(monkeypatch, tmp_path):
    """The project in tmp_path; what entering it changes (cwd, environment) is undone afterwards."""
    monkeypatch.setenv("HI3DGEN_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for key in project.environment():
        absent = key not in os.environ
        monkeypatch.setenv(key, os.environ.get(key, ""))  # recorded, so undone afterwards
        if absent:
            monkeypatch.delenv(key)


@pytest.fixture
def nobody():
    """A loopback URL of a port nobody listens on (bound once, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _says_unreachable(capsys, command, says, value):
    err = capsys.readouterr().err
    assert err.startswith(f"hi3dgen {command}: error: the {says} at ") and value in err and "unreachable" in err
    assert len(err.splitlines()) == 1  # one line, no traceback


@pytest.mark.parametrize(
    "command,var,path,says",
    [
        ("run", "PREFECT_API_URL", "/api", "Prefect server"),
        ("run", "MLFLOW_TRACKING_URI", "", "MLflow server"),
        ("deploy", "PREFECT_API_URL", "/api", "Prefect server"),
    ],
)
def test_flows_refuse_an_unreachable_service(monkeypatch, tmp_path, capsys, nobody, command, var, path, says):
    monkeypatch.setenv(var, nobody + path)
    assert main([command]) == 2
    _says_unreachable(capsys, command, says, nobody + path)
    assert not (tmp_path / ".hi3dgen" / "run.lock").exists()  # refused before taking the lock


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "nirne", "--data", "toy", "--preset", "tiny"],
        ["train", "vae", "--data", "toy", "--preset", "tiny"],
        ["generate", "--from-run", "0123abcd", "image.png"],
        ["runs", "compare"],
    ],
)
def test_commands_that_track_refuse_an_unreachable_mlflow(monkeypatch, tmp_path, capsys, nobody, argv):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", nobody)
    out = ["--out", str(tmp_path / "out")] if argv[0] != "runs" else []
    assert main([*argv, *out]) == 2
    _says_unreachable(capsys, argv[0], "MLflow server", nobody)
    assert not (tmp_path / "out").exists()  # before any work
