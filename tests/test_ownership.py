"""A stage deletes only what it wrote: the issue's `ingest --path D --out D` and an --out folder
holding a user's files are refused before anything is touched."""

import trimesh

from hi3dgen.assets.mesh import normalize, save_glb
from hi3dgen_cli import main as cli


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ingest_refuses_an_output_folder_that_is_its_input_or_holds_user_files(tmp_path, capsys):
    d = tmp_path / "D"
    (d / "assets").mkdir(parents=True)
    (d / "work").mkdir()
    save_glb(normalize(trimesh.creation.box()), d / "assets" / "user_model.glb")
    (d / "assets" / "user_model.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (d / "work" / "notes.tmp-2024.txt").write_text("notes")
    before = _tree(d)
    assert cli(["ingest", "--source", "local", "--path", str(d), "--out", str(d), "--executor", "inline"]) == 2
    assert "overlaps the input" in capsys.readouterr().err
    assert (
        cli(["ingest", "--source", "local", "--path", str(d / "assets"), "--out", str(d), "--executor", "inline"]) == 2
    )
    assert (
        cli(
            [
                "ingest",
                "--source",
                "local",
                "--path",
                str(tmp_path / "none"),
                "--out",
                str(d / "work"),
                "--executor",
                "inline",
            ]
        )
        == 2
    )
    assert _tree(d) == before

    (tmp_path / "src").mkdir()
    (d / "work").rename(tmp_path / "work")
    assert (
        cli(
            [
                "ingest",
                "--source",
                "local",
                "--path",
                str(tmp_path / "src"),
                "--out",
                str(tmp_path / "work"),
                "--executor",
                "inline",
            ]
        )
        == 2
    )
    assert "holds files hi3dgen did not write (notes.tmp-2024.txt)" in capsys.readouterr().err
    assert (tmp_path / "work" / "notes.tmp-2024.txt").read_text() == "notes"
