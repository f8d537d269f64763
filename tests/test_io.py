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
    (tmp_path / "views" / f"y{io.TMP_MARK}abc").mkdir()  # what a kill -9 leaves
    assert io.remove_temp_files(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["x"]
