import json

import pytest
import trimesh

import hi3dgen_cli
from hi3dgen.manifest import read_manifest
from tests.sources import files


@pytest.fixture(autouse=True)
def only_ingest(monkeypatch):
    """The sub-commands of other packages are not this test's subject."""
    monkeypatch.setattr(hi3dgen_cli, "COMMAND_MODULES", ("hi3dgen.sources.cli",))


def test_ingest_local(tmp_path, capsys):
    files.write_formats(tmp_path / "src")
    (tmp_path / "src" / "empty.obj").write_bytes(b"")
    argv = [
        "ingest",
        "--source",
        "local",
        "--path",
        str(tmp_path / "src"),
        "--out",
        str(tmp_path / "out"),
        "--executor",
        "inline",
        "--timeout",
        "30",
    ]
    assert hi3dgen_cli.main(argv) == 0
    rows = read_manifest(tmp_path / "out")
    assert sum(r["status"] == "accepted" for r in rows) == 6
    printed = capsys.readouterr().out
    assert "6 accepted" in printed and "rejected 1 x empty" in printed
    assert hi3dgen_cli.main(argv) == 0
    assert "resuming: 9 done, 0 to go" in capsys.readouterr().err


def test_ingest_objaverse_uids_file(tmp_path):
    uid = "ab" * 16
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(files.box()))
    files.objaverse_cache(tmp_path / "cache", {uid: glb})
    (tmp_path / "uids.txt").write_text(f"# wanted\n{uid}\n\nmissing-uid\n")
    argv = [
        "ingest",
        "--source",
        "objaverse",
        "--uids",
        str(tmp_path / "uids.txt"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-download",
        "--out",
        str(tmp_path / "out"),
        "--executor",
        "inline",
    ]
    assert hi3dgen_cli.main(argv) == 0
    rows = {r["uid"]: r for r in read_manifest(tmp_path / "out")}
    assert rows[uid]["status"] == "accepted"
    assert rows["missing-uid"]["reason"].startswith("missing_uid")
    assert json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0])


def test_ingest_usage_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out"), "--executor", "inline"]
    assert hi3dgen_cli.main(["ingest", "--source", "objaverse", *out]) == 2
    assert "--uids FILE or --limit N" in capsys.readouterr().err
    assert hi3dgen_cli.main(["ingest", "--source", "local", *out]) == 2
    assert hi3dgen_cli.main(["ingest", "--source", "local", "--path", "/nonexistent", *out]) == 2
    capsys.readouterr()
    for value in ("nan", "inf", "-1"):
        assert hi3dgen_cli.main(["ingest", "--source", "local", "--path", str(tmp_path), "--timeout", value, *out]) == 2
        assert "limit seconds must be a positive finite number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any work
