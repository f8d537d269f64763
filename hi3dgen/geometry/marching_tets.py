"""Batched iso-surface extraction on the device with no host copy or sync: marching tetrahedra on
dense SDF grids (B, R, R, R), into fixed-size face and vertex tensors per sample, so NoRLD's
regularizer can mesh all its samples every step without leaving the GPU.

Each grid cube is split into the 6 tetrahedra of the Kuhn triangulation (all sharing the cube's
main diagonal); their edges are the 7 positive offsets of a grid point, so an edge's id is
`point * 7 + direction`, shared by all tetrahedra that touch it (a watertight mesh). A sign change
in a tetrahedron gives 1 or 2 triangles, oriented outward (SDF < 0 inside). The triangles and the
crossed edges (the vertices) are compacted, in grid order, with a cumulative sum and
`searchsorted` (no boolean indexing, no `nonzero`): the first `max_faces` triangles and
`max_vertices` vertices are kept; the rest is counted (`face_count`, `vertex_count`) so a budget
overflow shows. Unused face slots are degenerate (all three indices 0) and rasterize to nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import torch

DIRS = [d for d in itertools.product((0, 1), repeat=3) if any(d)]  # the 7 edge directions of a point


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kuhn tetrahedra and their triangle table: corners (6, 4, 3) cube offsets; edge base
    offsets (6, 6, 3) and directions (6, 6) into DIRS; triangles (6, 16, 2, 3) local edge
    indices of the (up to 2) triangles of each sign case (bit m: corner m inside), -1 if none."""
    tets = []
    for p in itertools.permutations(range(3)):
        path = [np.zeros(3, int)]
        for axis in p:
            path.append(path[-1] + np.eye(3, dtype=int)[axis])
        tets.append(np.stack(path))
    tets = np.stack(tets)
    pairs = list(itertools.combinations(range(4), 2))
    base = tets[:, [a for a, _ in pairs]]
    dirs = np.array([[DIRS.index(tuple(t[b] - t[a])) for a, b in pairs] for t in tets])
    tris = np.full((6, 16, 2, 3), -1, np.int64)
    for ti, t in enumerate(tets):
        for case in range(16):
            inside = [m for m in range(4) if case >> m & 1]
            outside = [m for m in range(4) if not case >> m & 1]
            if len(inside) in (1, 3):
                lone = inside[0] if len(inside) == 1 else outside[0]
                others = [m for m in range(4) if m != lone]
                polys = [[tuple(sorted((lone, o))) for o in others]]
            elif len(inside) == 2:
                (a0, a1), (b0, b1) = inside, outside
                quad = [tuple(sorted(e)) for e in ((a0, b0), (a0, b1), (a1, b1), (a1, b0))]
                polys = [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]
            else:
                continue
            out_dir = t[outside].mean(0) - t[inside].mean(0)
            for slot, poly in enumerate(polys):
                mid = np.array([(t[a] + t[b]) / 2 for a, b in poly])
                if np.cross(mid[1] - mid[0], mid[2] - mid[0]) @ out_dir < 0:
                    poly = [poly[0], poly[2], poly[1]]
                tris[ti, case, slot] = [pairs.index(e) for e in poly]
    return tets, base, dirs, tris, np.array(DIRS)


@dataclasses.dataclass
class Topology:
    """Fixed-size meshes of a batch of grids, before vertex placement: each vertex is a grid edge."""

    edges: torch.Tensor  # (B, V) edge id (point * 7 + direction) of each vertex slot
    faces: torch.Tensor  # (B, F, 3) vertex slots, outward winding; unused faces (0, 0, 0)
    face_count: torch.Tensor  # (B,) triangles of the full surface (> F: the budget overflowed)
    vertex_count: torch.Tensor  # (B,) vertices of the full surface (> V: the budget overflowed)

    @property
    def overflow(self) -> torch.Tensor:
        """(B,) bool: the surface did not fit the face or vertex budget (faces were dropped)."""
        return (self.face_count > self.faces.shape[1]) | (self.vertex_count > self.edges.shape[1])


def _compact(keep: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The positions of the first `size` True entries of each row of `keep` (B, N) in order (their
    index, clamped in range where fewer exist), whether each slot is filled, and the rows' counts."""
    csum = keep.cumsum(1)
    want = torch.arange(1, size + 1, device=keep.device).expand(len(keep), -1).contiguous()
    idx = torch.searchsorted(csum, want).clamp(max=keep.shape[1] - 1)
    count = csum[:, -1]
    return idx, want <= count[:, None], count


@torch.no_grad()
def topology(values: torch.Tensor, max_faces: int, max_vertices: int) -> Topology:
    """Marching tetrahedra on SDF grids `values` (B, R, R, R) (index order x, y, z; < 0 inside)."""
    b, r = values.shape[0], values.shape[1]
    dev = values.device
    tets = _tables()[0]
    base, dirs, tris = (torch.from_numpy(a).to(dev) for a in _tables()[1:4])
    inside = values < 0
    c = r - 1
    # vertices: the grid edges whose ends differ in sign, in edge-id order
    crossed = torch.zeros(b, r, r, r, 7, dtype=torch.bool, device=dev)
    for k, (dx, dy, dz) in enumerate(DIRS):
        crossed[:, : r - dx, : r - dy, : r - dz, k] = (
            inside[:, : r - dx, : r - dy, : r - dz] != inside[:, dx:, dy:, dz:]
        )
    crossed = crossed.reshape(b, -1)
    edges, _, vertex_count = _compact(crossed, max_vertices)
    vertex_of_edge = crossed.cumsum(1) - 1  # a crossed edge's vertex slot
    # triangles: sign case of each tetrahedron of each cube, 2 slots each
    corner = {
        o: inside[:, o[0] : o[0] + c, o[1] : o[1] + c, o[2] : o[2] + c].reshape(b, -1).long()
        for o in itertools.product((0, 1), repeat=3)
    }
    case = torch.stack(
        [sum(corner[tuple(tet[m].tolist())] << m for m in range(4)) for tet in tets], dim=1
    )  # (B, 6, C^3)
    has = tris[:, :, :, 0] >= 0  # (6, 16, 2)
    slot_ok = has[torch.arange(6, device=dev)[None, :, None], case]  # (B, 6, C^3, 2)
    slots, filled, face_count = _compact(slot_ok.reshape(b, -1), max_faces)
    slot, tc = slots % 2, slots // 2
    tet, cube = tc // c**3, tc % c**3
    tri = tris[tet, case.reshape(b, -1).gather(1, tc), slot]  # (B, F, 3) local edges
    origin = torch.stack([cube // c**2, cube // c % c, cube % c], dim=-1)  # (B, F, 3)
    point = origin[:, :, None] + base[tet[..., None], tri]  # (B, F, 3, 3)
    edge_id = ((point[..., 0] * r + point[..., 1]) * r + point[..., 2]) * 7 + dirs[tet[..., None], tri]
    faces = vertex_of_edge.gather(1, edge_id.reshape(b, -1)).reshape(b, max_faces, 3)
    ok = filled & (faces < max_vertices).all(-1)
    faces = torch.where(ok[..., None], faces, torch.zeros_like(faces))
    return Topology(edges, faces, face_count, vertex_count)


def edge_ends(edges: torch.Tensor, resolution: int, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """World positions (..., 3) of the two ends of grid edges (ids as in `topology`) of a grid of
    `resolution` points per side spanning [-bound, bound]^3."""
    r = resolution
    point, d = edges // 7, edges % 7
    ijk = torch.stack([point // r**2, point // r % r, point % r], dim=-1)
    step = 2 * bound / (r - 1)
    dir_vec = torch.from_numpy(_tables()[4]).to(edges.device)
    return ijk.float() * step - bound, (ijk + dir_vec[d]).float() * step - bound
