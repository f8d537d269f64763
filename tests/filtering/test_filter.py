import json

import numpy as np
import trimesh

from hi3dgen import manifest as mf
from hi3dgen.assets import mesh as am
from hi3dgen.filtering import FilterConfig, filter_assets
from hi3dgen.parallel import ExecutorConfig
from hi3dgen_cli import main


def _stage_dir(tmp_path, meshes, rejected=()):
    """An upstream stage output: normalized GLBs plus manifest rows."""
    d = tmp_path / "in"
    rows = []
    for name, m in meshes.items():
        rel = f"assets/{name}.glb"
        sha = am.save_glb(am.normalize(m), d / rel)
        rows.append(
            {
                "asset_id": name,
                "source": "test",
                "domain": "real",
                "status": "accepted",
                "input_path": f"/raw/{name}",
                "path": rel,
                "sha256": sha,
            }
        )
    for name in rejected:
        rows.append(
            {
                "asset_id": name,
                "source": "test",
                "status": "rejected",
                "input_path": f"/raw/{name}",
                "reason": "invalid_file: broken",
            }
        )
    mf.write_manifest(d, rows)
    return d


def test_measure_box():
    m = am.measure(trimesh.creation.box((1.0, 0.5, 0.25)))
    assert m["faces"] == 12 and m["components"] == 1 and m["watertight"]
    assert m["sharp_edges"] == 12 and m["aspect"] == 4.0
    assert abs(m["thickness"] - 3 * 0.125 / 1.75) < 1e-9


def test_thresholds_duplicates_and_passthrough(tmp_path):
    box = trimesh.creation.box((1, 0.8, 0.6))
    shuffled = trimesh.Trimesh(box.vertices, box.faces[::-1])  # same geometry, other face order
    flat = trimesh.creation.box((1, 1, 0.001))
    sphere = trimesh.creation.icosphere(subdivisions=2)
    src = _stage_dir(
        tmp_path, {"a_box": box, "b_box_again": shuffled, "c_flat": flat, "d_sphere": sphere}, rejected=["e_broken"]
    )
    out = tmp_path / "out"
    rows = filter_assets([src], out, FilterConfig(min_sharp_edges=1), ExecutorConfig(kind="inline"))
    by = {r["asset_id"]: r for r in rows}
    assert by["a_box"]["status"] == "accepted"
    assert by["b_box_again"]["reason"] == "duplicate: of a_box"
    assert by["c_flat"]["reason"].startswith("flat")
    assert by["d_sphere"]["reason"].startswith("too_few_sharp_edges")
    assert by["e_broken"]["reason"] == "invalid_file: broken"  # rejected upstream keeps its reason
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["a_box.glb"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accepted"] == 1 and metrics["rejected_by_reason"]["duplicate"] == 1

    # The first box leaves: its duplicate is now the one kept, and its file appears.
    (src / "assets" / "a_box.glb").unlink()
    kept = [r for r in mf.read_manifest(src) if r["asset_id"] != "a_box"]
    mf.write_manifest(src, kept)
    rows = filter_assets([src], out, FilterConfig(min_sharp_edges=1), ExecutorConfig(kind="inline"))
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["b_box_again.glb"]
    assert np.allclose(am.load_glb(out / "assets" / "b_box_again.glb").extents.max(), 1.0)


def test_cli_filter(tmp_path, capsys):
    src = _stage_dir(tmp_path, {"a": trimesh.creation.box((1, 1, 1))})
    assert (
        main(["filter", "--in", str(src), "--out", str(tmp_path / "o"), "--executor", "inline", "--require-watertight"])
        == 0
    )
    assert "1 accepted" in capsys.readouterr().out
    assert main(["filter", "--in", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_upstream_metrics_are_used_only_for_the_same_bytes_and_code(tmp_path):
    """A synthesize row's `mesh_metrics` stand for `measure` of its GLB: the filter takes them when
    the code key and the file's sha256 match, and measures the file itself otherwise."""
    from hi3dgen.synthesis import synthesize

    src = tmp_path / "synth"
    rows = synthesize(3, 0, src, ExecutorConfig(kind="inline"), ["heat_sink", "tower_block", "medallion"])
    for r in rows:
        assert {k: v for k, v in r["mesh_metrics"].items() if k != "key"} == am.measure(am.load_glb(src / r["path"]))
    # Forge the upstream rows: wrong numbers under the right key, and under a stale key.
    forged = [dict(r, mesh_metrics=dict(r["mesh_metrics"], faces=1)) for r in rows]
    forged[1]["mesh_metrics"]["key"] = "0" * 16
    mf.write_manifest(src, forged)
    out = tmp_path / "out"
    by = {r["asset_id"]: r for r in filter_assets([src], out, FilterConfig(), ExecutorConfig(kind="inline"))}
    assert by[rows[0]["asset_id"]]["faces"] == 1  # trusted: same key, same bytes
    assert by[rows[1]["asset_id"]]["faces"] == rows[1]["mesh_metrics"]["faces"]  # stale key: measured
    assert all("mesh_metrics" not in r for r in by.values())
    # The file is no longer the bytes its row names (a user's edit): measured, whatever the row says.
    am.save_glb(am.normalize(trimesh.creation.box((1, 0.5, 0.5))), src / rows[0]["path"])
    out = tmp_path / "fresh"
    by = {r["asset_id"]: r for r in filter_assets([src], out, FilterConfig(), ExecutorConfig(kind="inline"))}
    assert by[rows[0]["asset_id"]]["faces"] == 12
