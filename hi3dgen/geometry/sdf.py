"""Signed distance to meshes that need not be watertight (ingested assets have holes, overlapping
parts and self-intersections).

The distance is exact: the closest point over all triangles. The sign comes from the generalized
winding number (Jacobson et al. 2013): it stays right away from holes and inside overlapping closed
parts, where ray parity fails. Both traverse a bounding-volume tree of the faces for many points
at once (numpy, vectorized over point-node pairs), so the cost grows with the faces near a point
rather than with all faces: nodes that cannot hold a closer point are pruned (distance), and far
nodes count as their dipole (winding number, the far-field term of Barill et al. 2018).

Measured on DetailVerse assets of 40-60k faces: ~5 s of one core for 16,384 SDF samples.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from hi3dgen.assets.mesh import clean

PAIR_CHUNK = 1 << 18  # point-triangle pairs per vectorized block (~50 MB of temporaries)
POINT_CHUNK = 4096  # points traversing the tree together
ANCHOR_SAMPLES = 65536  # surface samples that bound the distance from above
UNIFORM_BOUND = 0.55  # uniform SDF samples fill [-0.55, 0.55]^3 around the unit-cube asset


def _solid_angles(tris: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed solid angle of triangles (..., 3, 3) seen from points (..., 3) (van Oosterom and
    Strackee); positive where the triangle's counter-clockwise side faces away from the point."""
    a, b, c = (tris[..., i, :] - points for i in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.einsum("...i,...i->...", a, np.cross(b, c))
    den = (
        la * lb * lc
        + np.einsum("...i,...i->...", a, b) * lc
        + np.einsum("...i,...i->...", b, c) * la
        + np.einsum("...i,...i->...", c, a) * lb
    )
    return 2.0 * np.arctan2(det, den)


class MeshSDF:
    """Exact unsigned distance and generalized winding number of one triangle mesh, over a binary
    tree of faces (median splits of centroids) traversed for many points at once.

    Faces are first grouped by size class (powers of two), one tree each, so that a long sliver
    does not inflate the bounds of a whole subtree of small faces. `beta`: a node farther than beta
    times its radius counts as its dipole in the winding number (np.inf: every face exactly).
    """

    def __init__(self, mesh: trimesh.Trimesh, leaf: int = 8, beta: float = 2.0):
        tris = np.asarray(mesh.triangles, dtype=np.float64)
        self.beta, self.leaf = beta, leaf
        centroids = tris.mean(1)
        size = np.linalg.norm(tris - centroids[:, None], axis=-1).max(1)
        size_class = np.floor(np.log2(np.maximum(size, 1e-6)))
        area_vec = 0.5 * np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        nodes: list[tuple] = []  # (lo, hi, centre, radius, dipole, area, children, leaf faces)

        def build(ids: np.ndarray) -> int:
            if len(ids) <= leaf:
                t = tris[ids]
                area = np.linalg.norm(area_vec[ids], axis=1)
                weights = area if area.sum() > 0 else np.ones(len(ids))
                centre = (centroids[ids] * weights[:, None]).sum(0) / weights.sum()
                radius = np.linalg.norm(t - centre, axis=-1).max()
                nodes.append((t.reshape(-1, 3).min(0), t.reshape(-1, 3).max(0), centre, radius,
                              area_vec[ids].sum(0), area.sum(), (-1, -1), ids))
                return len(nodes) - 1
            pts = centroids[ids]
            axis = int(np.argmax(np.ptp(pts, axis=0)))
            cut = leaf * (-(-len(ids) // leaf) // 2)  # full leaves on the left
            order = np.argpartition(pts[:, axis], cut)
            kids = build(ids[order[:cut]]), build(ids[order[cut:]])
            a, b = nodes[kids[0]], nodes[kids[1]]
            area = a[5] + b[5]
            centre = (a[2] * a[5] + b[2] * b[5]) / area if area > 0 else (a[2] + b[2]) / 2
            radius = max(np.linalg.norm(a[2] - centre) + a[3], np.linalg.norm(b[2] - centre) + b[3])
            nodes.append((np.minimum(a[0], b[0]), np.maximum(a[1], b[1]), centre, radius,
                          a[4] + b[4], area, kids, None))
            return len(nodes) - 1

        self.roots = np.array([build(np.nonzero(size_class == c)[0]) for c in np.unique(size_class)])
        self.lo, self.hi, self.centre = (np.array([n[i] for n in nodes]) for i in range(3))
        self.radius, self.dipole = np.array([n[3] for n in nodes]), np.array([n[4] for n in nodes])
        self.children = np.array([n[6] for n in nodes])
        leaves = [i for i, n in enumerate(nodes) if n[7] is not None]
        self.leaf_of = np.full(len(nodes), -1)
        self.leaf_of[leaves] = np.arange(len(leaves))
        self.leaf_tris = tris[np.stack([np.resize(nodes[i][7], leaf) for i in leaves])]  # padded
        self.leaf_valid = np.arange(leaf)[None] < np.array([len(nodes[i][7]) for i in leaves])[:, None]
        face_leaf = np.empty(len(tris), dtype=np.int64)
        for k, i in enumerate(leaves):
            face_leaf[nodes[i][7]] = k
        # Vertices, centroids and area-weighted samples lie on the surface: the nearest one bounds
        # the distance, tightly even above large faces, so the traversal prunes early.
        samples, sample_face = trimesh.sample.sample_surface(
            trimesh.Trimesh(tris.reshape(-1, 3), np.arange(3 * len(tris)).reshape(-1, 3), process=False),
            max(ANCHOR_SAMPLES, 2 * len(tris)), seed=0)
        anchors = np.concatenate([tris.reshape(-1, 3), centroids, samples])
        self._anchor_leaf = np.concatenate([np.repeat(face_leaf, 3), face_leaf, face_leaf[sample_face]])
        self._tree = cKDTree(anchors)

    def _leaf_distance(self, points: np.ndarray, leaf_ids: np.ndarray) -> np.ndarray:
        """Distance from each point to the nearest face of its leaf."""
        out = np.empty(len(points))
        step = max(1, PAIR_CHUNK // self.leaf)
        for s in range(0, len(points), step):
            p = np.repeat(points[s:s + step], self.leaf, axis=0)
            cp = trimesh.triangles.closest_point(self.leaf_tris[leaf_ids[s:s + step]].reshape(-1, 3, 3), p)
            d = np.linalg.norm(cp - p, axis=1).reshape(-1, self.leaf)
            out[s:s + step] = np.where(np.isfinite(d), d, np.inf).min(1)
        return out

    def _start(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(np.arange(n), len(self.roots)), np.tile(self.roots, n)

    def _expand(self, pi: np.ndarray, node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(pi, 2), self.children[node].ravel()

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Exact unsigned distance from each point (P, 3) to the surface."""
        points = np.asarray(points, dtype=np.float64)
        out = np.empty(len(points))
        for s in range(0, len(points), POINT_CHUNK):
            p = points[s:s + POINT_CHUNK]
            bound, j = self._tree.query(p)
            u = np.minimum(bound, self._leaf_distance(p, self._anchor_leaf[j]))
            pi, node = self._start(len(p))
            while len(pi):
                gap = np.maximum(np.maximum(self.lo[node] - p[pi], p[pi] - self.hi[node]), 0)
                keep = np.einsum("ij,ij->i", gap, gap) < u[pi] ** 2
                pi, node = pi[keep], node[keep]
                is_leaf = self.leaf_of[node] >= 0
                if is_leaf.any():
                    lp = pi[is_leaf]
                    np.minimum.at(u, lp, self._leaf_distance(p[lp], self.leaf_of[node[is_leaf]]))
                pi, node = self._expand(pi[~is_leaf], node[~is_leaf])
            out[s:s + POINT_CHUNK] = u
        return out

    def winding_number(self, points: np.ndarray) -> np.ndarray:
        """Generalized winding number: ~1 inside a closed outward-facing surface, ~0 outside."""
        points = np.asarray(points, dtype=np.float64)
        w = np.zeros(len(points))
        for s in range(0, len(points), POINT_CHUNK):
            p = points[s:s + POINT_CHUNK]
            pi, node = self._start(len(p))
            while len(pi):
                rel = self.centre[node] - p[pi]
                r = np.linalg.norm(rel, axis=1)
                far = r > self.beta * self.radius[node]
                dip = np.einsum("ij,ij->i", rel[far], self.dipole[node[far]]) / r[far] ** 3
                w[s:s + POINT_CHUNK] += np.bincount(pi[far], dip, minlength=len(p))
                pi, node = pi[~far], node[~far]
                is_leaf = self.leaf_of[node] >= 0
                lp, ln = pi[is_leaf], self.leaf_of[node[is_leaf]]
                step = max(1, PAIR_CHUNK // self.leaf)
                for t in range(0, len(lp), step):
                    ang = _solid_angles(self.leaf_tris[ln[t:t + step]], p[lp[t:t + step]][:, None, :])
                    ang = (ang * self.leaf_valid[ln[t:t + step]]).sum(1)
                    w[s:s + POINT_CHUNK] += np.bincount(lp[t:t + step], ang, minlength=len(p))
                pi, node = self._expand(pi[~is_leaf], node[~is_leaf])
        return w / (4.0 * np.pi)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance, negative inside. |winding| > 1/2 is inside, so that a part wound inside out
        still counts as solid."""
        return np.where(np.abs(self.winding_number(points)) > 0.5, -1.0, 1.0) * self.distance(points)


def prepare(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Merged vertices, no degenerate faces, and outward-facing on the whole (signed volume >= 0),
    so surface normals point out."""
    mesh = clean(mesh)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def shape_samples(
    mesh: trimesh.Trimesh,
    *,
    surface_points: int,
    sdf_points: int,
    near_sigmas: tuple[float, ...],
    uniform_fraction: float,
    seed: int,
) -> dict:
    """Surface points with normals (N, 6) and SDF samples (M, 4) (near-surface at each sigma in
    equal shares, then uniform in the cube), all float32, deterministic for a seed."""
    mesh = prepare(mesh)
    rng = np.random.default_rng(seed)
    pts, face = trimesh.sample.sample_surface(mesh, surface_points, seed=rng)
    surface = np.concatenate([pts, mesh.face_normals[face]], axis=1).astype(np.float32)
    n_uniform = int(round(sdf_points * uniform_fraction))
    n_near = [(sdf_points - n_uniform) // max(len(near_sigmas), 1)] * len(near_sigmas)
    if n_near:
        n_near[0] += sdf_points - n_uniform - sum(n_near)
    queries = []
    for n, sigma in zip(n_near, near_sigmas):
        base, _ = trimesh.sample.sample_surface(mesh, n, seed=rng)
        queries.append(base + rng.normal(0.0, sigma, base.shape))
    queries.append(rng.uniform(-UNIFORM_BOUND, UNIFORM_BOUND, (n_uniform, 3)))
    queries = np.concatenate(queries)
    sdf = MeshSDF(mesh).signed_distance(queries)
    uniform = sdf[len(sdf) - n_uniform:]
    return {
        "surface": surface,
        "sdf": np.concatenate([queries, sdf[:, None]], axis=1).astype(np.float32),
        "counts": {"near": n_near, "uniform": n_uniform},
        "inside_fraction": float((uniform < 0).mean()) if n_uniform else None,
        "faces": int(len(mesh.faces)),
        "watertight": bool(mesh.is_watertight),
    }
