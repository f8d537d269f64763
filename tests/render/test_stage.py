import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from hi3dgen import io
from hi3dgen.assets.mesh import normalize, save_glb
from hi3dgen.data import codec
from hi3dgen.manifest import read_manifest, write_manifest
from hi3dgen.parallel import ExecutorConfig
from hi3dgen.render import RenderConfig, render_assets
from hi3dgen_cli import main as cli

INLINE = ExecutorConfig(kind="inline")
MEMBERS = ("camera.json", "depth.npy.gz", "mask.png", "meta.json", "normal.png", "rgb.png")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A filter-like stage output: two good GLBs, an unreadable one, and one rejected row."""
    d = tmp_path_factory.mktemp("in")
    meshes = {
        "box": trimesh.creation.box((1.0, 0.6, 0.4)),
        "ring": trimesh.creation.torus(0.35, 0.12, major_sections=24, minor_sections=12),
    }
    rows = []
    for name, mesh in meshes.items():
        save_glb(normalize(mesh), d / "assets" / f"{name}.glb")
        rows.append(
            {
                "asset_id": name,
                "source": "test",
                "domain": "synthetic",
                "status": "accepted",
                "path": f"assets/{name}.glb",
            }
        )
    (d / "assets" / "broken.glb").write_bytes(b"glTF but not really")
    rows.append({"asset_id": "broken", "source": "test", "status": "accepted", "path": "assets/broken.glb"})
    rows.append(
        {
            "asset_id": "bad",
            "source": "test",
            "status": "rejected",
            "reason": "thin: thickness 0.0001",
            "input_path": "/elsewhere/bad.glb",
        }
    )
    write_manifest(d, rows)
    return d


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "views").rglob("*")) if p.is_file()}


def test_render_assets_writes_view_samples_and_rows(inputs, tmp_path):
    cfg = RenderConfig(views=3, resolution=32)
    rows = {r["asset_id"]: r for r in render_assets(inputs, tmp_path, cfg, INLINE)}
    assert rows == {r["asset_id"]: r for r in read_manifest(tmp_path)}
    bad = rows["bad"]
    assert bad["status"] == "rejected" and bad["reason"] == "thin: thickness 0.0001"
    assert bad["input_path"] == "/elsewhere/bad.glb" and not (tmp_path / "views" / "bad").exists()
    broken = rows["broken"]  # one bad asset is a row, not a failed stage
    assert broken["status"] == "rejected" and broken["reason"].startswith("error: ")
    box = rows["box"]
    assert box["status"] == "accepted" and box["dir"] == "views/box" and box["views"] == 3
    assert box["input_path"] == str(inputs / "assets" / "box.glb")
    assert box["backend"] == "embree" and box["domain"] == "synthetic"
    names = sorted(p.name for p in (tmp_path / "views" / "box").iterdir())
    assert names == [f"{v:03d}.{m}" for v in range(3) for m in MEMBERS]
    d = tmp_path / "views" / "box"
    mask = codec.decode_mask((d / "001.mask.png").read_bytes())
    normal = codec.decode_normal((d / "001.normal.png").read_bytes())
    depth = codec.decode_depth((d / "001.depth.npy.gz").read_bytes())
    assert mask.any() and not mask.all()
    np.testing.assert_allclose(np.linalg.norm(normal[mask], axis=-1), 1.0, atol=1e-4)
    assert (normal[~mask] == 0).all() and (depth[~mask] == 0).all() and (depth[mask] > 0).all()
    assert depth.dtype == np.float32
    camera = codec.decode_json((d / "001.camera.json").read_bytes())
    assert set(camera) == {"K", "c2w", "width", "height"} and camera["width"] == 32
    meta = codec.decode_json((d / "001.meta.json").read_bytes())
    assert meta["asset_id"] == "box" and meta["view"] == 1 and meta["domain"] == "synthetic"
    assert meta["backend"] == "embree" and meta["backend_version"].startswith("embreex ")
    assert codec.decode_rgb((d / "001.rgb.png").read_bytes()).shape == (32, 32, 3)


def test_deterministic_resumable_and_rerendered_on_change(inputs, tmp_path):
    cfg = RenderConfig(views=2, resolution=24, rgb=False)
    a, b = tmp_path / "a", tmp_path / "b"
    render_assets(inputs, a, cfg, INLINE)
    render_assets(inputs, b, cfg, INLINE)
    files = _files(a)
    assert files == _files(b) and not any(k.endswith("rgb.png") for k in files)
    # a killed run's half-written folder is never trusted; a finished one is not redone
    half = Path(tempfile.mkdtemp(prefix="ring" + io.TMP_MARK, dir=a / "views"))
    (half / "000.normal.png").write_bytes(b"torn")
    stamp = {p.name: os.stat(p).st_ino for p in (a / "views").iterdir() if p != half}
    render_assets(inputs, a, cfg, INLINE)
    assert not half.exists()
    assert {p.name: os.stat(p).st_ino for p in (a / "views").iterdir()} == stamp
    assert _files(a) == files
    render_assets(inputs, a, RenderConfig(views=2, resolution=16, rgb=False), INLINE)
    assert all(os.stat(a / "views" / k).st_ino != ino for k, ino in stamp.items())
    camera = codec.decode_json((a / "views" / "ring" / "000.camera.json").read_bytes())
    assert camera["width"] == 16


def test_cli_names_a_backend_that_cannot_run_here(inputs, tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert (
        cli(["render", "--in", str(inputs), "--out", str(tmp_path), "--backend", "nvdiffrast", "--executor", "inline"])
        == 2
    )
    assert "backend 'nvdiffrast' requires CUDA" in capsys.readouterr().err
    assert not (tmp_path / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    "flag,value,says",
    [
        ("--resolution", "100000", r"resolution must be in \[1, 4096\] pixels, not 100000"),
        ("--resolution", "0", "resolution must be in"),
        ("--views", "0", "views must be at least 1"),
    ],
)
def test_cli_refuses_sizes_no_asset_could_render(inputs, tmp_path, capsys, flag, value, says):
    assert (
        cli(["render", "--in", str(inputs), "--out", str(tmp_path / "out"), flag, value, "--executor", "inline"]) == 2
    )
    assert re.search(says, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # refused before any work
    with pytest.raises(ValueError, match=r"fov_deg must be in \(0, 180\)"):
        RenderConfig(fov_deg=180)


def test_cli_over_ray(inputs, tmp_path, ray_local):
    out = tmp_path / "out"
    assert (
        cli(["render", "--in", str(inputs), "--out", str(out), "--views", "2", "--resolution", "16", "--no-rgb"]) == 0
    )
    rows = {r["asset_id"]: r["status"] for r in read_manifest(out)}
    assert rows == {"bad": "rejected", "box": "accepted", "broken": "rejected", "ring": "accepted"}
    assert sorted(p.name for p in (out / "views").iterdir()) == ["box", "ring"]
