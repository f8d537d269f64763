"""The git tags of every run: a change to the code makes a run dirty, the run's own records
(dvc.lock, metrics/, rewritten by every run and committed with it) do not. `compare` pools seeds:
mean ± std per group of a param, in a real sqlite store that concurrent runs create."""

import subprocess
from concurrent.futures import ProcessPoolExecutor

import pytest

from hi3dgen import tracking
from hi3dgen.tracking import git_tags


def test_dirty_means_changed_code_not_the_run_records(tmp_path):
    (tmp_path / "metrics").mkdir()
    for name in ("code.py", "dvc.lock", "metrics/norld.json"):
        (tmp_path / name).write_text("1\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run 1"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "dvc.lock").write_text("2\n")
    (tmp_path / "metrics" / "norld.json").write_text("2\n")
    assert git_tags(tmp_path) == {"git.commit": head, "git.dirty": "false"}
    (tmp_path / "code.py").write_text("2\n")
    assert git_tags(tmp_path)["git.dirty"] == "true"


def _log_run(args) -> None:
    import mlflow

    experiment, params, ne = args
    mlflow.set_tracking_uri(tracking.tracking_uri())
    with mlflow.start_run(experiment_id=tracking.setup(experiment)):
        mlflow.log_params(params)
        mlflow.log_metric("val/NE", ne)


def test_compare_groups_runs_by_a_param_with_mean_and_std(tmp_path, monkeypatch):
    monkeypatch.setenv("HI3DGEN_STATE", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs = [
        ("abl", {"noise": n, "seed": s}, ne)
        for n, s, ne in [("on", 0, 10.0), ("on", 1, 12.0), ("on", 2, 14.0), ("off", 0, 20.0), ("off", 1, 21.0)]
    ]
    with ProcessPoolExecutor(3) as pool:  # three processes meet a new database at once
        list(pool.map(_log_run, runs))
    lines = tracking.compare(experiment="abl", group_by=("noise",)).splitlines()
    assert lines[0].split() == ["noise=off", "noise=on"]
    assert lines[1].split() == ["runs", "2", "3"]
    assert lines[2].split() == ["metric", "val/NE", "20.5", "±", "0.707", "12", "±", "2"]
    assert len(tracking.compare(experiment="abl").splitlines()[0].split()) == 2  # ungrouped: the latest 2 runs
    with pytest.raises(ValueError, match="no run has the param"):
        tracking.compare(experiment="abl", group_by=("lr",))
