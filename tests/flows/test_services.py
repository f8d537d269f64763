"""A configured service that is not there gives a clear error before any work starts."""

import pytest

from hi3dgen.cli import main


@pytest.mark.parametrize("var,value,says", [
    ("PREFECT_API_URL", "http://127.0.0.1:9/api", "Prefect server"),
    ("MLFLOW_TRACKING_URI", "http://127.0.0.1:9", "MLflow server"),
])
def test_unreachable_service_is_a_clear_error(monkeypatch, tmp_path, capsys, var, value, says):
    monkeypatch.setenv("HI3DGEN_ROOT", str(tmp_path))
    monkeypatch.setenv(var, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert says in err and value in err and "unreachable" in err
    assert not (tmp_path / ".hi3dgen" / "run.lock").exists()  # refused before taking the lock
