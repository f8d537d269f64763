import hashlib
import math
import os
import re
import time

import numpy as np
import pytest
import trimesh

from hi3dgen.assets.mesh import ASSET_ID_RE, load_glb
from hi3dgen.manifest import read_manifest
from hi3dgen.parallel import ExecutorConfig
from hi3dgen.sources.local import asset_ids, ingest_local
from hi3dgen.sources.sandbox import Limits
from tests import gltf
from tests.sources import files

INLINE = ExecutorConfig(kind="inline")


def by_name(rows):
    return {r["input_path"].rsplit("/", 1)[-1]: r for r in rows}


def check_normalized(out, row):
    mesh = load_glb(out / row["path"])
    lo, hi = mesh.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-6)
    assert (hi - lo).max() == pytest.approx(1, abs=1e-6)
    assert row["sha256"] == hashlib.sha256((out / row["path"]).read_bytes()).hexdigest()
    return mesh


def test_every_format_is_accepted_and_normalized(tmp_path):
    written = files.write_formats(tmp_path / "src")
    rows = ingest_local(tmp_path / "src", tmp_path / "out", INLINE)
    named = by_name(rows)
    for ext, path in written.items():
        row = named[path.name]
        assert row["status"] == "accepted", row
        assert row["source"] == "local" and row["domain"] == "real" and row["faces"] == 12
        assert ASSET_ID_RE.match(row["asset_id"]) and row["asset_id"].startswith("local-")
        mesh = check_normalized(tmp_path / "out", row)
        np.testing.assert_allclose(np.sort(mesh.extents), [0.25, 0.5, 1.0], atol=1e-6)
    buffers = [r for r in rows if r["input_path"].endswith(".bin")]
    assert buffers and all(r["reason"].startswith("unsupported_format") for r in buffers)
    assert read_manifest(tmp_path / "out") == sorted(rows, key=lambda r: r["asset_id"])
    assets = sorted(p.name for p in (tmp_path / "out" / "assets").iterdir())
    assert assets == sorted(f"{r['asset_id']}.glb" for r in rows if r["status"] == "accepted")


def test_ingested_assets_are_valid_gltf(tmp_path):
    files.write_formats(tmp_path / "src")
    rows = ingest_local(tmp_path / "src", tmp_path / "out", INLINE)
    gltf.assert_valid([tmp_path / "out" / r["path"] for r in rows if r["status"] == "accepted"])


def test_scene_transforms_are_applied_and_z_up_turned(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), node_name="a")
    scene.add_geometry(
        trimesh.creation.box(), node_name="b", transform=trimesh.transformations.translation_matrix([0, 0, 3])
    )
    scene.export(tmp_path / "pair.glb")
    out = tmp_path / "out"
    [row] = ingest_local(tmp_path / "pair.glb", out, INLINE)
    np.testing.assert_allclose(check_normalized(out, row).extents, [0.25, 0.25, 1.0], atol=1e-6)
    [row] = ingest_local(tmp_path / "pair.glb", out, INLINE, up_axis="z")
    np.testing.assert_allclose(check_normalized(out, row).extents, [0.25, 1.0, 0.25], atol=1e-6)


def test_messy_files_get_their_reason_and_the_rest_goes_through(tmp_path):
    expected = files.write_messy(tmp_path / "src")
    rows = ingest_local(tmp_path / "src", tmp_path / "out", INLINE, Limits(max_file_mb=1))
    named = by_name(rows)
    assert set(named) == set(expected)
    got = {name: r["reason"].split(":")[0] if r["status"] == "rejected" else None for name, r in named.items()}
    assert got == expected
    check_normalized(tmp_path / "out", named["good.obj"])
    rerun = ingest_local(tmp_path / "src", tmp_path / "out", INLINE, Limits(max_file_mb=1))
    assert rerun == rows


def test_links_loops_and_same_names_each_get_their_row(tmp_path):
    src = tmp_path / "src"
    expected = files.write_links(src)
    rows = ingest_local(src, tmp_path / "out", INLINE)
    got = {
        os.path.relpath(r["input_path"], src): r["reason"].split(":")[0] if r["status"] == "rejected" else None
        for r in rows
    }
    assert got == expected
    named = {os.path.relpath(r["input_path"], src): r for r in rows}
    assert len({r["asset_id"] for r in rows}) == len(rows)
    assert named["real/a.obj"]["asset_id"] != named["other/a.obj"]["asset_id"]
    for link in ("cycle1.obj", "gone.obj", "real/loop"):
        assert str(src / link) in named[link]["reason"]  # the reason names the link
    assert "nowhere.obj" in named["gone.obj"]["reason"]
    check_normalized(tmp_path / "out", named["snap/model.glb"])
    assert ingest_local(src, tmp_path / "out", INLINE) == rows


def test_asset_ids_stay_unique_at_scale_and_when_hashes_collide():
    rels = [f"d{i}/a.obj" for i in range(100_000)]  # with 8 hex digits, 2 in 3 such sets collide
    ids = asset_ids(rels)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"local-a-[0-9a-f]{16}", i) for i in ids)  # 10^7 paths: odds of a clash ~3e-6
    few = asset_ids(rels[:50], digits=1)  # 16 hashes for 50 paths: most collide
    assert len(set(few)) == 50 and few == asset_ids(rels[:50], digits=1)
    assert all(ASSET_ID_RE.match(i) for i in few)


def test_reasons_say_what_is_wrong(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files.stl_claiming(src / "claims.stl", 10**9)
    files.huge_view_glb(src / "view.glb")
    files.strided_glb(src / "strided.glb")
    reasons = {name: r["reason"] for name, r in by_name(ingest_local(src, tmp_path / "out", INLINE)).items()}
    assert reasons["claims.stl"].startswith("invalid_file: the binary STL header claims 1000000000 triangles")
    assert reasons["view.glb"] == f"invalid_file: bufferView 0 spans bytes 0 to {4 * 2**30} of buffer 0, which has 240"
    assert reasons["strided.glb"].startswith("invalid_file: AssertionError at trimesh/exchange/gltf/")
    assert "assert" in reasons["strided.glb"].split("(", 1)[1]  # the line that raised


@pytest.mark.parametrize("field", ["seconds", "memory_mb", "max_file_mb", "max_faces"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_limits_must_be_positive_and_finite(field, value):
    with pytest.raises(ValueError, match=f"limit {field} must be a positive finite number"):
        Limits(**{field: value})


def test_hangs_and_memory_blowups_are_stopped_within_the_limits(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files.chain_gltf(src / "deep.gltf", 300)
    files.box().export(src / "good.stl")
    t0 = time.monotonic()
    rows = ingest_local(src, tmp_path / "out", INLINE, Limits(seconds=3, max_faces=10**9))
    assert time.monotonic() - t0 < 30  # the deep chain alone would take many minutes
    assert by_name(rows)["deep.gltf"]["reason"].startswith("timeout")
    assert by_name(rows)["good.stl"]["status"] == "accepted"
    bomb = files.instances_gltf(tmp_path / "instances.gltf", 2_000)
    rows = ingest_local(bomb, tmp_path / "out2", INLINE, Limits(memory_mb=300, max_faces=10**9))
    assert rows[0]["reason"].startswith("memory_limit")


def test_ray_workers_run_the_sandbox(tmp_path, ray_local):
    src = tmp_path / "src"
    src.mkdir()
    files.box().export(src / "good.ply")
    files.chain_gltf(src / "deep.gltf", 300)
    (src / "readme.md").write_text("#")
    rows = ingest_local(src, tmp_path / "out", ExecutorConfig(workers=2), Limits(seconds=2))
    reasons = {name: r.get("reason", "").split(":")[0] for name, r in by_name(rows).items()}
    assert reasons == {"good.ply": "", "deep.gltf": "timeout", "readme.md": "unsupported_format"}
