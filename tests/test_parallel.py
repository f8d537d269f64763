"""The stage loop: every input gets a row, failures become rows, reruns resume, config changes redo."""

import functools
import json
import os
import sys

import cloudpickle
import pytest

from hi3dgen import manifest as mf
from hi3dgen.parallel import ExecutorConfig, fan_out, run_stage

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _work(item):
    """Writes one marker file per call, so tests can count the calls."""
    calls = os.path.join(item["calls"], f"{item['asset_id']}-{len(os.listdir(item['calls']))}")
    open(calls, "w").close()
    if item["asset_id"] == "bad":
        raise RuntimeError("cannot read this one")
    if item["asset_id"] == "crash":
        os._exit(1)  # a worker dying, as under an OOM kill
    row = {k: item[k] for k in ("asset_id", "source", "input_path")}
    if item["asset_id"] == "slow":
        return {**row, "status": "rejected", "reason": "timeout: not done within 1 s"}
    if "out" in item:  # writes its output, as a stage does
        path = f"files/{item['asset_id']}.txt"
        os.makedirs(os.path.join(item["out"], "files"), exist_ok=True)
        open(os.path.join(item["out"], path), "w").write(item["asset_id"])
        return {**row, "status": "accepted", "path": path}
    return {**row, "status": "accepted"}


def _items(tmp_path, ids):
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return [{"asset_id": i, "source": "test", "input_path": f"/in/{i}", "calls": str(calls)} for i in ids]


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


def test_process_executor_gives_the_inline_manifest_and_outputs(tmp_path):
    ids = ["b1", "a1", "bad", "c1", "d1"]
    outs = {}
    for kind in ("inline", "process"):
        out = tmp_path / kind
        (tmp_path / f"calls-{kind}").mkdir()
        items = [{**it, "out": str(out)} for it in _items(tmp_path / f"calls-{kind}", ids)]
        executor = ExecutorConfig(kind=kind, workers=2, max_in_flight=2)
        rows = run_stage("t", out, items, _work, config={}, executor=executor)
        assert [r["asset_id"] for r in rows] == ids
        outs[kind] = (
            (out / mf.MANIFEST).read_text(),
            {p.name: p.read_text() for p in (out / "files").iterdir()},
        )
    assert outs["process"] == outs["inline"]
    assert "cannot read this one" in outs["process"][0]


def test_a_dead_worker_process_is_a_row_with_the_reason_and_the_rest_completes(tmp_path):
    out = tmp_path / "out"
    executor = ExecutorConfig(kind="process", workers=2, retries=1)
    ids = ["a1", "crash", "b1", "c1"]
    rows = run_stage("t", out, _items(tmp_path, ids), _work, config={}, executor=executor)
    by_id = {r["asset_id"]: r for r in rows}
    assert [by_id[k]["status"] for k in ("a1", "b1", "c1")] == ["accepted"] * 3
    assert by_id["crash"]["status"] == "rejected"
    assert by_id["crash"]["reason"] == "error: worker process died (exit code 1)"
    assert _calls(tmp_path).count("crash") == 2  # retried once in a fresh process, then reported
    assert sorted(_calls(tmp_path)) == sorted(["a1", "b1", "c1", "crash", "crash"])


def _pid_and_import(item):
    """The worker's pid, and whether a module imported by an earlier item is still loaded."""
    loaded = "hi3dgen.synthesis.csg" in sys.modules
    import hi3dgen.synthesis.csg  # noqa: F401

    return os.getpid(), loaded, item["x"] * item.get("k", 1), tuple(os.sched_getaffinity(0))


def test_process_workers_are_kept_across_fan_outs_and_take_each_ones_function(tmp_path):
    executor = ExecutorConfig(kind="process", workers=2)
    items = [{"x": i} for i in range(6)]
    first = [r for _, ok, r in fan_out(_pid_and_import, items, executor) if ok]
    second = [r for _, ok, r in fan_out(functools.partial(_scaled, k=10), items, executor) if ok]
    assert len(first) == len(second) == 6
    assert {r[0] for r in second} <= {r[0] for r in first}  # the same processes
    assert all(r[1] for r in second)  # what they imported before, they still hold
    assert sorted(r[2] for r in second) == [10 * i for i in range(6)]  # the new function ran
    cores = sorted(os.sched_getaffinity(0))
    pinned = {r[0]: r[3] for r in first}
    assert all(len(c) == 1 for c in pinned.values())  # each worker on one core
    assert len(set(pinned.values())) == min(2, len(cores))  # and on cores of their own


def _scaled(item, k):
    return _pid_and_import({**item, "k": k})


def test_manifest_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="needs a reason"):
        mf.write_manifest(tmp_path, [{"asset_id": "a", "source": "s", "status": "rejected"}])
    with pytest.raises(ValueError, match="duplicate asset_id"):
        row = {"asset_id": "a", "source": "s", "status": "accepted"}
        mf.write_manifest(tmp_path, [row, row])


def test_a_timeout_is_final_for_the_same_config_and_retried_under_another(tmp_path):
    out = tmp_path / "out"
    inline = ExecutorConfig(kind="inline")
    for config in ({"seconds": 1}, {"seconds": 1}, {"seconds": 5}):
        rows = run_stage("t", out, _items(tmp_path, ["slow"]), _work, config=config, executor=inline)
        assert rows[0]["reason"].startswith("timeout")
    assert _calls(tmp_path).count("slow") == 2  # not at full cost on every rerun; again for new limits


def test_journal_drops_only_a_torn_last_line_and_a_damaged_one_is_an_error(tmp_path):
    journal = mf.Journal(tmp_path, "fp")
    for i in range(3):
        journal.append({"asset_id": f"a{i}", "source": "s", "status": "accepted"}, "item")
    journal.close()
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole + b'{"asset_id": "a3", "fp"')  # killed mid-line
    assert sorted(mf.Journal(tmp_path, "fp").done()) == ["a0", "a1", "a2"]
    with mf.Journal(tmp_path, "fp") as j:
        j.append({"asset_id": "a4", "source": "s", "status": "accepted"}, "item")
    assert journal.path.read_bytes().startswith(whole) and sorted(j.done()) == ["a0", "a1", "a2", "a4"]
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"\.journal\.jsonl:2: not a JSON row"):
        mf.Journal(tmp_path, "fp").done()


def test_an_input_manifest_with_a_bad_line_is_an_error_naming_it(tmp_path):
    rows = [{"asset_id": f"a{i}", "source": "s", "status": "accepted"} for i in range(3)]
    mf.write_manifest(tmp_path, rows)
    lines = (tmp_path / mf.MANIFEST).read_text().splitlines()
    (tmp_path / mf.MANIFEST).write_text("\n".join([lines[0], lines[1][:10], lines[2]]) + "\n")
    with pytest.raises(ValueError, match=r"manifest\.jsonl:2: not a JSON row"):
        mf.read_manifest(tmp_path)
    (tmp_path / mf.MANIFEST).write_text(lines[0] + "\n" + json.dumps({"asset_id": "b", "status": "accepted"}) + "\n")
    with pytest.raises(ValueError, match=r"row 2: manifest row lacks \['source'\]"):
        mf.read_manifest(tmp_path)


def test_a_stage_removes_only_its_own_outputs_and_refuses_a_folder_with_others(tmp_path):
    out = tmp_path / "out"
    inline = ExecutorConfig(kind="inline")
    items = [{**it, "out": str(out)} for it in _items(tmp_path, ["a1", "b1"])]
    run_stage("t", out, items, _work, config={}, executor=inline, output_dirs=("files",))
    run_stage("t", out, items[:1], _work, config={}, executor=inline, output_dirs=("files",))
    assert sorted(p.name for p in (out / "files").iterdir()) == ["a1.txt"]  # b1's output went with its row
    (out / "files" / "mine.txt").write_text("a user's file")
    with pytest.raises(ValueError, match=r"did not write \(files/mine\.txt\)"):
        run_stage("t", out, items, _work, config={}, executor=inline, output_dirs=("files",))
    assert (out / "files" / "mine.txt").read_text() == "a user's file"
    assert len(mf.read_manifest(out)) == 1
