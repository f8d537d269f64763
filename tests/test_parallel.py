"""The stage loop: every input gets a row, failures become rows, reruns resume, config changes redo."""

import json
import os
import sys

import cloudpickle
import pytest

from hi3dgen.data import manifest as mf
from hi3dgen.parallel import ExecutorConfig, run_stage

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _work(item):
    """Writes one marker file per call, so tests can count the calls."""
    calls = os.path.join(item["calls"], f"{item['asset_id']}-{len(os.listdir(item['calls']))}")
    open(calls, "w").close()
    if item["asset_id"] == "bad":
        raise RuntimeError("cannot read this one")
    if item["asset_id"] == "crash":
        os._exit(1)  # a worker dying, as under an OOM kill
    return {**{k: item[k] for k in ("asset_id", "source", "input_path")}, "status": "accepted"}


def _items(tmp_path, ids):
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return [
        {"asset_id": i, "source": "test", "input_path": f"/in/{i}", "calls": str(calls)} for i in ids
    ]


def _calls(tmp_path):
    return sorted(p.split("-")[0] for p in os.listdir(tmp_path / "calls"))


def test_failures_become_rows_and_reruns_resume(tmp_path):
    out = tmp_path / "out"
    inline = ExecutorConfig(kind="inline")
    rows = run_stage("t", out, _items(tmp_path, ["b1", "a1", "bad"]), _work, config={"x": 1}, executor=inline)
    assert [r["asset_id"] for r in rows] == ["b1", "a1", "bad"]
    bad = next(r for r in rows if r["asset_id"] == "bad")
    assert bad["status"] == "rejected" and "cannot read this one" in bad["reason"]
    manifest = mf.read_manifest(out)
    assert [r["asset_id"] for r in manifest] == ["a1", "b1", "bad"]  # sorted, deterministic
    assert len(_calls(tmp_path)) == 3

    run_stage("t", out, _items(tmp_path, ["b1", "a1", "bad", "c1"]), _work, config={"x": 1}, executor=inline)
    # Only the new item ran, and the one whose error may be transient was tried again.
    assert _calls(tmp_path).count("c1") == 1 and _calls(tmp_path).count("bad") == 2
    assert len(_calls(tmp_path)) == 5

    run_stage("t", out, _items(tmp_path, ["a1"]), _work, config={"x": 2}, executor=inline)
    assert _calls(tmp_path).count("a1") == 2  # a changed config redoes the work
    assert [r["asset_id"] for r in mf.read_manifest(out)] == ["a1"]


def test_torn_journal_line_is_not_trusted(tmp_path):
    out = tmp_path / "out"
    inline = ExecutorConfig(kind="inline")
    run_stage("t", out, _items(tmp_path, ["a1", "b1"]), _work, config={}, executor=inline)
    journal = out / mf.JOURNAL
    lines = journal.read_text().splitlines()
    journal.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed mid-write
    run_stage("t", out, _items(tmp_path, ["a1", "b1"]), _work, config={}, executor=inline)
    redone = lines[1] and json.loads(lines[1])["asset_id"]
    assert _calls(tmp_path).count(redone) == 2
    assert len(mf.read_manifest(out)) == 2


def test_ray_worker_crash_is_a_row_not_a_failed_stage(tmp_path, ray_local):
    out = tmp_path / "out"
    ray_cfg = ExecutorConfig(kind="ray", retries=1)
    rows = run_stage("t", out, _items(tmp_path, ["a1", "crash", "b1"]), _work, config={}, executor=ray_cfg)
    by_id = {r["asset_id"]: r for r in rows}
    assert by_id["a1"]["status"] == by_id["b1"]["status"] == "accepted"
    assert by_id["crash"]["status"] == "rejected" and by_id["crash"]["reason"].startswith("error:")
    assert _calls(tmp_path).count("crash") == 2  # retried once, then reported


def test_manifest_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="needs a reason"):
        mf.write_manifest(tmp_path, [{"asset_id": "a", "source": "s", "status": "rejected"}])
    with pytest.raises(ValueError, match="duplicate asset_id"):
        row = {"asset_id": "a", "source": "s", "status": "accepted"}
        mf.write_manifest(tmp_path, [row, row])
