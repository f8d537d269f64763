import tempfile

import pytest

from hi3dgen import io


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "a" / "f.bin"
    io.write_bytes(target, b"old")
    try:
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt  # interrupted before the rename
    except KeyboardInterrupt:
        pass
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_dir_replaces_whole_and_temp_leftovers_are_removed(tmp_path):
    target = tmp_path / "views" / "x"
    with io.atomic_dir(target) as d:
        (d / "1.txt").write_text("1")
    with io.atomic_dir(target) as d:
        (d / "2.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["2.txt"]
    tempfile.mkdtemp(prefix="y" + io.TMP_MARK, dir=tmp_path / "views")  # what a kill -9 leaves
    (tmp_path / "views" / "notes.tmp-2024.txt").write_text("a user's file")
    (tmp_path / "views" / f"plan{io.TMP_MARK}v2.txt").write_text("not a name io makes")
    assert io.remove_temp_files(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == [
        "notes.tmp-2024.txt",
        f"plan{io.TMP_MARK}v2.txt",
        "x",
    ]


def test_claim_dir_refuses_foreign_files_other_stages_and_overlap_before_touching_anything(tmp_path):
    src = tmp_path / "src"
    (src / "assets").mkdir(parents=True)
    (src / "assets" / "user_model.obj").write_text("v 0 0 0")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for out in (src, src / "out", tmp_path):
        with pytest.raises(ValueError, match="overlaps the input"):
            io.claim_dir(out, "ingest", lambda rel: True, inputs=[src])
    with pytest.raises(ValueError, match=r"did not write \(assets/user_model.obj\)"):
        io.claim_dir(src, "ingest", lambda rel: rel == "manifest.jsonl")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before

    out = io.claim_dir(tmp_path / "out", "ingest", lambda rel: rel == "manifest.jsonl", inputs=[src])
    (out / "manifest.jsonl").write_text("")
    assert io.claim_dir(out, "ingest", lambda rel: rel == "manifest.jsonl") == out  # its own again
    with pytest.raises(ValueError, match="output folder of 'ingest', not of 'render'"):
        io.claim_dir(out, "render", lambda rel: True)
