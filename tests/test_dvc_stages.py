"""The data stages through DVC on a fresh copy of the project: `dvc repro shard` runs them, a
`kill -9` of render (and its Ray workers) mid-stage resumes to byte-identical shards, an unchanged
rerun does nothing, a render parameter reruns only render and shard."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from tests import project

pytestmark = pytest.mark.slow


def _ran(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def _kill_render_midway(root) -> None:
    proc = subprocess.Popen(["dvc", "repro", "--single-item", "render"], cwd=root, env=project.env(root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    views = root / "outputs" / "render" / "views"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (views.exists() and any(views.iterdir())):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the stage and its Ray workers mid-render
    proc.wait()


def test_dvc_repro_data_stages_and_a_killed_render(tmp_path):
    root = project.make(tmp_path)
    first = project.run(root, "dvc", "repro", "shard")
    assert _ran(first.stdout) == ["synthesize", "ingest", "filter", "render", "shard"]
    assert json.loads((root / "outputs" / "shards" / "shards.json").read_text())
    expected = project.shard_digests(root)
    assert expected

    # Render again from nothing, kill -9 it midway, and let DVC finish: the same shards.
    shutil.rmtree(root / "outputs" / "render")
    shutil.rmtree(root / "outputs" / "shards")
    _kill_render_midway(root)
    resumed = project.run(root, "dvc", "repro", "shard")
    assert _ran(resumed.stdout) == ["render", "shard"]
    assert project.shard_digests(root) == expected

    again = project.run(root, "dvc", "repro", "shard")
    assert _ran(again.stdout) == []

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["render"]["resolution"] = 40
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = project.run(root, "dvc", "repro", "shard")
    assert _ran(changed.stdout) == ["render", "shard"]
