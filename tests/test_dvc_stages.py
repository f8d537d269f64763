"""The data stages through DVC on a fresh copy of the project: `dvc repro shard` runs them, a
`kill -9` of render (and its Ray workers) mid-stage resumes to byte-identical shards, an unchanged
rerun and an edit of training code do nothing, and a fix in the renderer redoes render and shard
to exactly what a from-scratch run of the new code makes."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests import project

pytestmark = pytest.mark.slow


def _ran(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def _kill_render_midway(root) -> None:
    proc = subprocess.Popen(
        ["dvc", "repro", "--single-item", "render"],
        cwd=root,
        env=project.env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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

    trainer = root / "hi3dgen" / "training" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\n# an edit no data stage imports\n")
    assert _ran(project.run(root, "dvc", "repro", "shard").stdout) == []

    # The "bug fix": normals flipped in the embree renderer. Render and shard are redone
    # (not resumed from the journal), and equal a from-scratch run of the new code.
    embree = root / "hi3dgen" / "render" / "embree.py"
    text = embree.read_text()
    fixed = text.replace(
        "normal[mask] = face_normals[tri[mask]] @ cam.rotation",
        "normal[mask] = -(face_normals[tri[mask]] @ cam.rotation)",
    )
    assert fixed != text
    embree.write_text(fixed)
    changed = project.run(root, "dvc", "repro", "shard")
    assert _ran(changed.stdout) == ["render", "shard"]
    assert "resuming" not in changed.stderr
    after_fix = _render_files(root), project.shard_digests(root)
    assert after_fix[1] != expected
    shutil.rmtree(root / "outputs" / "render")
    shutil.rmtree(root / "outputs" / "shards")
    assert _ran(project.run(root, "dvc", "repro", "shard").stdout) == ["render", "shard"]
    assert (_render_files(root), project.shard_digests(root)) == after_fix


def _render_files(root) -> dict[str, str]:
    out = root / "outputs" / "render"
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".journal.jsonl"
    }
