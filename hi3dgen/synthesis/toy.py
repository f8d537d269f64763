"""Toy shapes: analytic boxes, spheres and capped cylinders (longest side 1) in the shape sample's
decoded form, with exact SDFs and embree-rendered views, for machines without shape shards (and
tests)."""

from __future__ import annotations

import numpy as np

from hi3dgen.data.shapes import ShapeDataConfig
from hi3dgen.geometry.sdf import sharp_edge_samples
from hi3dgen.render.cameras import orbit_cameras
from hi3dgen.render.embree import EmbreeBackend


def _box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def _cylinder_sdf(p: np.ndarray, radius: float, half_height: float) -> np.ndarray:
    d = np.stack([np.linalg.norm(p[:, [0, 2]], axis=-1) - radius, np.abs(p[:, 1]) - half_height], -1)
    return np.minimum(d.max(-1), 0) + np.linalg.norm(np.maximum(d, 0), axis=-1)


def toy_shape(index: int, seed: int, cfg: ShapeDataConfig, surface_points: int = 32768, sdf_points: int = 4096) -> dict:
    """One analytic shape (box, sphere or capped cylinder, longest side 1) as a decoded shape
    sample: surface (N, 6), sharp-edge points (K, 6), exact sdf (M, 4), normals (V, 3, H, W), masks,
    cameras, and its mesh."""
    import trimesh

    rng = np.random.default_rng([seed, index])
    kind = index % 3
    if kind == 0:
        half = np.sort(rng.uniform(0.15, 0.5, 3))[[1, 2, 0]]
        half[1] = 0.5
        mesh, sdf = trimesh.creation.box(2 * half), lambda p: _box_sdf(p, half)
    elif kind == 1:
        mesh, sdf = trimesh.creation.icosphere(3, radius=0.5), lambda p: np.linalg.norm(p, axis=-1) - 0.5
    else:
        r, h = (0.5, rng.uniform(0.1, 0.5)) if rng.random() < 0.5 else (rng.uniform(0.1, 0.5), 0.5)
        mesh = trimesh.creation.cylinder(r, 2 * h, sections=48)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # axis z -> y
        sdf = lambda p: _cylinder_sdf(p, r, h)  # noqa: E731
    pts, face = trimesh.sample.sample_surface(mesh, surface_points, seed=rng)
    near = trimesh.sample.sample_surface(mesh, sdf_points // 2, seed=rng)[0]
    near = near + rng.normal(0, rng.choice([0.005, 0.05], (len(near), 1)), near.shape)
    queries = np.concatenate([near, rng.uniform(-0.55, 0.55, (sdf_points - len(near), 3))])
    cams = orbit_cameras(cfg.toy_views, cfg.toy_size, seed=int(rng.integers(1 << 31)))
    views = EmbreeBackend().render(mesh, cams, rgb=False)
    return {
        "key": f"toy_{seed}_{index:05d}",
        "asset_id": f"toy_{seed}_{index:05d}",
        "surface": np.concatenate([pts, mesh.face_normals[face]], 1).astype(np.float32),
        "sharp": sharp_edge_samples(mesh, surface_points // 4, 15.0, rng),
        "sdf": np.concatenate([queries, sdf(queries)[:, None]], 1).astype(np.float32),
        "mesh": mesh,
        "normals": np.stack([v.normal.transpose(2, 0, 1) for v in views]).astype(np.float32),
        "masks": np.stack([v.mask for v in views]),
        "cameras": {
            "K": np.stack([c.K for c in cams]).astype(np.float32),
            "c2w": np.stack([c.c2w for c in cams]).astype(np.float32),
            "width": cfg.toy_size,
            "height": cfg.toy_size,
        },
    }


def toy_shapes(cfg: ShapeDataConfig, split: str) -> list[dict]:
    n = cfg.toy_train if split == "train" else cfg.val_shapes
    seed = {"train": 0, "val": 1_000_000}[split]
    return [toy_shape(i, seed, cfg) for i in range(n)]
