"""A render folder in the render stage's layout, built from tiny arrays and meshes."""

import zlib

import numpy as np
import pytest
import trimesh

from hi3dgen.assets.mesh import save_glb
from hi3dgen.data import codec
from hi3dgen.manifest import write_manifest

RES = 32


def view_arrays(seed: int, res: int = RES) -> dict:
    """A hemisphere-like normal map with a disc mask, and matching depth and rgb."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:res, 0:res] + 0.5) / res * 2 - 1
    r2 = x**2 + y**2
    mask = r2 < rng.uniform(0.5, 0.9)
    normal = np.stack([x, -y, np.sqrt(np.clip(1 - r2, 0, 1))], -1)
    normal += rng.normal(0, 0.05, normal.shape)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    depth = np.where(mask, 2.0 - np.sqrt(np.clip(1 - r2, 0, 1)), 0).astype(np.float32)
    rgb = rng.integers(0, 256, (res, res, 3), dtype=np.uint8)
    return {"normal": normal, "mask": mask, "depth": depth, "rgb": rgb}


def write_view(folder, asset_id, v, source, domain, rgb=True):
    a = view_arrays(zlib.crc32(f"{asset_id}:{v}".encode()))
    cam = {
        "K": [[40.0, 0, RES / 2], [0, 40.0, RES / 2], [0, 0, 1]],
        "c2w": np.eye(4).tolist(),
        "width": RES,
        "height": RES,
    }
    cam["c2w"][2][3] = 2.0 + v
    members = {
        "normal.png": codec.encode_normal(a["normal"], a["mask"]),
        "mask.png": codec.encode_mask(a["mask"]),
        "depth.npy.gz": codec.encode_depth(a["depth"]),
        "camera.json": codec.encode_json(cam),
        "meta.json": codec.encode_json(
            {"asset_id": asset_id, "view": v, "source": source, "domain": domain, "backend": "test", "version": "0"}
        ),
    }
    if rgb:
        members["rgb.png"] = codec.encode_rgb(a["rgb"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / f"{v:03d}.{name}").write_bytes(data)


def meshes():
    return {
        "sphere": trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        "box": trimesh.creation.box((1.0, 0.6, 0.4)),
        "torus": trimesh.creation.torus(0.35, 0.12, major_sections=16, minor_sections=8),
    }


@pytest.fixture
def make_render(tmp_path):
    """make_render([(asset_id, domain, mesh_name), ...]) -> render dir with those accepted assets,
    plus one asset the render stage rejected."""

    def make(assets, views=3, root=None):
        root = root or tmp_path
        render = root / "render"
        rows = []
        for asset_id, domain, shape in assets:
            glb = root / "assets" / f"{asset_id}.glb"
            if shape == "broken":
                glb.parent.mkdir(parents=True, exist_ok=True)
                glb.write_bytes(b"not a glb")
            else:
                save_glb(meshes()[shape], glb)
            source = "detailverse" if domain == "synthetic" else "local"
            for v in range(views):
                write_view(render / "views" / asset_id, asset_id, v, source, domain)
            rows.append(
                {
                    "asset_id": asset_id,
                    "source": source,
                    "domain": domain,
                    "status": "accepted",
                    "input_path": str(glb),
                    "views": views,
                    "backend": "test",
                    "dir": f"views/{asset_id}",
                }
            )
        rows.append(
            {
                "asset_id": "gone",
                "source": "local",
                "domain": "real",
                "status": "rejected",
                "reason": "render_failed: test",
                "input_path": str(root / "gone.glb"),
            }
        )
        write_manifest(render, rows)
        return render

    return make
