"""Surface reconstruction metrics between two oriented point sets (points sampled from a predicted
mesh and from the ground truth): Chamfer distance, F-score and normal consistency, as in
Occupancy Networks / 3DShape2VecSet. Distances are Euclidean, in the units of the points (the unit
cube for assets), not squared.

Meshes are compared through `EVAL_POINTS` samples on each: a sparse sample set scores a perfect
reconstruction far from perfect (a unit cube against itself, 8,192 ground-truth points: F-score at
1% 0.37, Chamfer 0.013; with 100,000: 0.995 and 0.004), since a point's nearest neighbour then lies
about half the sample spacing away, more than the 1% threshold.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

FSCORE_FRACTION = 0.01  # F-score threshold: 1% of the ground truth's longest bounding-box side
EVAL_POINTS = 100_000  # points sampled on each mesh compared


def _nearest(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each src point to its nearest dst point, and that point's index."""
    return cKDTree(dst).query(src, workers=1)


def object_size(points: np.ndarray) -> float:
    return float(np.ptp(points, axis=0).max())


def surface_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """pred, gt: (N, 6) points with unit normals -> chamfer, fscore (at 1% of the gt's size) and
    normal_consistency, from one nearest-neighbour query each way."""
    d_pg, i_pg = _nearest(pred[:, :3], gt[:, :3])
    d_gp, i_gp = _nearest(gt[:, :3], pred[:, :3])
    tau = FSCORE_FRACTION * object_size(gt[:, :3])
    precision, recall = (d_pg < tau).mean(), (d_gp < tau).mean()
    consistency = 0.5 * (
        np.abs((pred[:, 3:6] * gt[i_pg, 3:6]).sum(1)).mean() + np.abs((gt[:, 3:6] * pred[i_gp, 3:6]).sum(1)).mean()
    )
    return {
        "chamfer": float(0.5 * (d_pg.mean() + d_gp.mean())),
        "fscore": float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0,
        "normal_consistency": float(consistency),
    }


def sample_surface(mesh, count: int, seed: int = 0) -> np.ndarray:
    """(count, 6) points with face normals, area-uniform on a trimesh."""
    import trimesh

    pts, face = trimesh.sample.sample_surface(mesh, count, seed=np.random.default_rng(seed))
    return np.concatenate([pts, mesh.face_normals[face]], axis=1)


def mesh_metrics(mesh, gt_mesh, count: int = EVAL_POINTS, seed: int = 0) -> dict[str, float]:
    """Metrics of a predicted trimesh against the ground-truth trimesh, `count` points sampled on
    each. An empty or missing prediction scores the worst values (chamfer inf, fscore 0,
    consistency 0)."""
    if mesh is None or len(mesh.faces) == 0:
        return {"chamfer": float("inf"), "fscore": 0.0, "normal_consistency": 0.0}
    return surface_metrics(sample_surface(mesh, count, seed), sample_surface(gt_mesh, count, seed + 1))
