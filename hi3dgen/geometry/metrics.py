"""Surface reconstruction metrics between two oriented point sets (points sampled from a predicted
mesh and from the ground truth): Chamfer distance, F-score and normal consistency, as in
Occupancy Networks / 3DShape2VecSet. Distances are Euclidean, in the units of the points (the unit
cube for assets), not squared.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

FSCORE_FRACTION = 0.01  # F-score threshold: 1% of the ground truth's longest bounding-box side


def _nearest(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each src point to its nearest dst point, and that point's index."""
    return cKDTree(dst).query(src, workers=1)


def chamfer(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric Chamfer distance: the mean of the two directed mean nearest-neighbour distances."""
    d_pg, _ = _nearest(pred, gt)
    d_gp, _ = _nearest(gt, pred)
    return float(0.5 * (d_pg.mean() + d_gp.mean()))


def fscore(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """Harmonic mean of precision (pred points within `threshold` of gt) and recall (the converse)."""
    d_pg, _ = _nearest(pred, gt)
    d_gp, _ = _nearest(gt, pred)
    precision, recall = (d_pg < threshold).mean(), (d_gp < threshold).mean()
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def normal_consistency(pred: np.ndarray, pred_normals: np.ndarray, gt: np.ndarray, gt_normals: np.ndarray) -> float:
    """Mean |cos| between each point's normal and its nearest neighbour's in the other set, both
    directions averaged (orientation-free, so an inside-out part is not punished twice)."""
    _, i_pg = _nearest(pred, gt)
    _, i_gp = _nearest(gt, pred)
    a = np.abs((pred_normals * gt_normals[i_pg]).sum(1)).mean()
    b = np.abs((gt_normals * pred_normals[i_gp]).sum(1)).mean()
    return float(0.5 * (a + b))


def object_size(points: np.ndarray) -> float:
    return float(np.ptp(points, axis=0).max())


def surface_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """pred, gt: (N, 6) points with unit normals -> chamfer, fscore (at 1% of the gt's size) and
    normal_consistency."""
    tau = FSCORE_FRACTION * object_size(gt[:, :3])
    return {
        "chamfer": chamfer(pred[:, :3], gt[:, :3]),
        "fscore": fscore(pred[:, :3], gt[:, :3], tau),
        "normal_consistency": normal_consistency(pred[:, :3], pred[:, 3:6], gt[:, :3], gt[:, 3:6]),
    }


def sample_surface(mesh, count: int, seed: int = 0) -> np.ndarray:
    """(count, 6) points with face normals, area-uniform on a trimesh."""
    import trimesh

    pts, face = trimesh.sample.sample_surface(mesh, count, seed=np.random.default_rng(seed))
    return np.concatenate([pts, mesh.face_normals[face]], axis=1)


def mesh_metrics(mesh, gt: np.ndarray, count: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Metrics of a predicted trimesh against ground-truth surface samples (N, 6). An empty or
    missing prediction scores the worst values (chamfer inf, fscore 0, consistency 0).

    At a 1% threshold the score is bounded by both point densities: the ground truth itself,
    sampled with 10,000 points against 8,192 ground-truth points, scores F 0.69 (a box) and 0.59
    (a sphere); with 100,000 against 32,768, 0.99 and 0.98."""
    if mesh is None or len(mesh.faces) == 0:
        return {"chamfer": float("inf"), "fscore": 0.0, "normal_consistency": 0.0}
    return surface_metrics(sample_surface(mesh, count, seed), gt)
