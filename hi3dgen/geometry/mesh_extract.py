"""Iso-surface extraction from a learned SDF, with vertex positions that are differentiable
functions of the SDF, so a loss on the mesh (NoRLD's rendered-normal loss) reaches the latent.

The topology comes from marching cubes on a grid of SDF values computed without gradients
(hierarchically: a coarse grid, then exact values only in a band around its zero crossing). Each
vertex lies on one grid edge (a, b); it is then placed again at a + t (b - a) with
t = f(a) / (f(a) - f(b)) from the two endpoint SDF values re-queried *with* gradients: the same
position marching cubes found, now a torch function of f. Only 2 queries per vertex carry
gradients, instead of the whole grid.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import record_function

SDFFn = Callable[[torch.Tensor], torch.Tensor]  # (P, 3) points -> (P,) signed distances


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    resolution: int = 64  # grid points per side
    bound: float = 0.55  # the grid spans [-bound, bound]^3 (assets live in [-0.5, 0.5]^3)
    coarse: int = 0  # > 0: first a grid of this many points per side, then exact values near its surface
    chunk: int = 65536  # points per SDF call


@dataclasses.dataclass
class Mesh:
    """Vertices (V, 3) float tensor (differentiable), faces (F, 3) long tensor, outward-facing."""

    vertices: torch.Tensor
    faces: torch.Tensor

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices.detach().cpu().double().numpy(), self.faces.cpu().numpy(), process=False)


def grid_points(resolution: int, bound: float, device=None) -> torch.Tensor:
    """(R, R, R, 3) points, index order (i, j, k) = (x, y, z)."""
    x = torch.linspace(-bound, bound, resolution, device=device)
    return torch.stack(torch.meshgrid(x, x, x, indexing="ij"), dim=-1)


def _evaluate(fn: SDFFn, pts: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([fn(pts[s : s + chunk]) for s in range(0, len(pts), chunk)]) if len(pts) else pts.new_zeros(0)


@torch.no_grad()
def sdf_grid(fn: SDFFn, cfg: ExtractConfig, device=None) -> torch.Tensor:
    """SDF values (R, R, R). With `cfg.coarse`, points farther from the coarse zero crossing than the
    coarse grid's interpolation error keep the interpolated value: only their sign matters there."""
    r = cfg.resolution
    pts = grid_points(r, cfg.bound, device)
    if not cfg.coarse or cfg.coarse >= r:
        return _evaluate(fn, pts.reshape(-1, 3), cfg.chunk).float().reshape(r, r, r)
    coarse = _evaluate(fn, grid_points(cfg.coarse, cfg.bound, device).reshape(-1, 3), cfg.chunk).float()
    coarse = coarse.reshape(1, 1, cfg.coarse, cfg.coarse, cfg.coarse)
    values = F.interpolate(coarse, size=(r, r, r), mode="trilinear", align_corners=True)[0, 0]
    cell = 2 * cfg.bound / (cfg.coarse - 1)
    near = values.abs() < 1.5 * 3**0.5 * cell  # an SDF is 1-Lipschitz: the surface lies within this
    values[near] = _evaluate(fn, pts[near], cfg.chunk).float()
    return values


def _edges(idx_verts: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid edge (a, b) each marching-cubes vertex lies on (integer (V, 3) each): the axis with
    the fractional coordinate, clipped so b stays inside the grid."""
    base = np.floor(idx_verts)
    frac = idx_verts - base
    axis = frac.argmax(1)
    a = base.astype(np.int64)
    rows = np.arange(len(a))
    a[rows, axis] = np.minimum(a[rows, axis], r - 2)
    b = a.copy()
    b[rows, axis] += 1
    return a, b


def extract(fn: SDFFn, cfg: ExtractConfig, device=None, grid: torch.Tensor | None = None) -> Mesh | None:
    """The zero level set of `fn` as a mesh whose vertices carry gradients to `fn`'s parameters and
    inputs; None when the grid holds no surface. `grid` reuses SDF values computed before."""
    from skimage.measure import marching_cubes

    if grid is None:
        with record_function("extract.sdf_grid"):
            grid = sdf_grid(fn, cfg, device)
    with record_function("extract.marching_cubes"):  # on the CPU: the grid goes to the host
        values = grid.detach().cpu().numpy().astype(np.float32)
        values[values == 0] = 1e-9  # a vertex exactly on a grid point would have no edge of its own
        if values.min() >= 0 or values.max() <= 0:
            return None
        idx_verts, faces, _, _ = marching_cubes(values, 0.0)  # default gradient direction: outward for SDF < 0 inside
    if len(faces) == 0:
        return None
    with record_function("extract.refine"):
        return _refine(fn, cfg, grid.device, idx_verts, faces)


def _refine(fn: SDFFn, cfg: ExtractConfig, device, idx_verts: np.ndarray, faces: np.ndarray) -> Mesh:
    """Marching-cubes vertices placed again on their grid edges from SDF values queried with gradients."""
    r = cfg.resolution
    a, b = _edges(idx_verts, r)
    step = 2 * cfg.bound / (r - 1)
    ends = torch.from_numpy(np.concatenate([a, b])).to(device=device, dtype=torch.float32) * step - cfg.bound
    f = _evaluate(fn, ends, cfg.chunk)
    f = f if f.dtype == torch.float64 else f.float()  # vertices in float32, or float64 for a float64 SDF
    ends = ends.to(f.dtype)
    vertices = edge_vertices(ends[: len(a)], ends[len(a) :], f[: len(a)], f[len(a) :])
    return Mesh(vertices, torch.from_numpy(faces.astype(np.int64)).to(device))


def edge_vertices(pa: torch.Tensor, pb: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """The zero crossing a + t (b - a), t = f(a) / (f(a) - f(b)), on edges with ends (..., 3) and
    SDF values (...): differentiable in the values (and so in what they were computed from)."""
    den = fa - fb
    den = torch.where(den.abs() < 1e-12, torch.full_like(den, 1e-12), den)
    t = (fa / den).clamp(0.0, 1.0)[..., None]
    return pa + t * (pb - pa)
