"""`hi3dgen run` on a fresh copy of the project: one MLflow parent run with a child per stage, a
rerun with nothing changed skips every stage, a killed run resumes to byte-identical shards, and a
second concurrent run is refused."""

import hashlib
import os
import signal
import subprocess
import time

import pytest

from tests import project

pytestmark = pytest.mark.slow


def _shard_digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "outputs" / "shards").rglob("*.tar"))}


def _runs(root):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(project.env(root)["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    exp = client.get_experiment_by_name("hi3dgen")
    return client.search_runs([exp.experiment_id], max_results=500)


def test_run_lineage_rerun_and_lock(tmp_path):
    root = project.make(tmp_path)
    out = project.run(root, "hi3dgen", "run", "--until", "shard").stdout
    assert "Where to look" in out
    runs = _runs(root)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["hi3dgen.stage"] for r in children) == sorted(
        ["synthesize", "ingest", "filter", "render", "shard"])
    for r in children:
        assert r.data.tags["git.commit"] != "unknown" and "dvc.lock.outputs" in r.data.tags
    first = _shard_digests(root)
    assert first

    # A second run holds the lock while this one tries to start.
    holder = subprocess.Popen(
        [str(project.REPO / ".venv" / "bin" / "python"), "-c",
         "import time; from flows import project\nwith project.run_lock():\n print('locked', flush=True); time.sleep(60)"],
        cwd=root, env=project.env(root), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    refused = project.run(root, "hi3dgen", "run", check=False)
    holder.kill()
    assert refused.returncode != 0 and "another hi3dgen run is in progress" in refused.stderr

    t0 = time.monotonic()
    again = project.run(root, "hi3dgen", "run", "--until", "shard").stdout
    assert again.count("skipped") >= 5, again
    assert time.monotonic() - t0 < 120
    assert _shard_digests(root) == first


def test_killed_render_resumes_to_identical_shards(tmp_path):
    reference = project.make(tmp_path / "a", {"render": {"views": 4, "resolution": 48}})
    project.run(reference, "dvc", "repro", "shard")
    expected = _shard_digests(reference)

    root = project.make(tmp_path / "b", {"render": {"views": 4, "resolution": 48}})
    project.run(root, "dvc", "repro", "filter")
    proc = subprocess.Popen(["dvc", "repro", "--single-item", "render"], cwd=root, env=project.env(root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    views = root / "outputs" / "render" / "views"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (views.exists() and any(views.iterdir())):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the stage and its Ray workers mid-render
    proc.wait()
    project.run(root, "dvc", "repro", "shard")
    assert _shard_digests(root) == expected
