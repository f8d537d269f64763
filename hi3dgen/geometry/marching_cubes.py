"""Batched iso-surface extraction on the device with no host copy or sync: marching cubes on
dense SDF grids (B, R, R, R), into fixed-size face and vertex tensors per sample, so NoRLD's
regularizer can mesh all its samples every step without leaving the GPU.

The triangle table is built here (`_tables`): on each cube face with 2 sign changes their edges
are joined; with 4 (the ambiguous face) each inside corner is cut off, a rule both cubes sharing
the face apply alike, so the mesh is watertight. The joined edges close into polygons, which are
oriented outward (SDF < 0 inside) and fanned into at most 5 triangles per cube. A vertex lies on
a grid edge, id `point * 7 + direction` (the 7 positive offsets of a grid point; marching cubes
uses the 3 axes), shared by the cubes around it. Triangles and crossed edges (the vertices) are
compacted, in grid order, with a cumulative sum and `searchsorted` (no boolean indexing, no
`nonzero`): the first `max_faces` triangles and `max_vertices` vertices are kept; the rest is
counted (`face_count`, `vertex_count`) so a budget overflow shows. Unused face slots are
degenerate (all three indices 0) and rasterize to nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import torch

DIRS = [d for d in itertools.product((0, 1), repeat=3) if any(d)]  # the 7 edge directions of a point
CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))  # cube corner c at offset CORNERS[c]
CUBE_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if np.abs(CORNERS[a] - CORNERS[b]).sum() == 1]
MAX_TRIANGLES = 5  # per cube


def _cube_faces() -> list[list[int]]:
    """The 6 faces of the cube as corner indices in cyclic order."""
    faces = []
    for axis in range(3):
        u, v = (i for i in range(3) if i != axis)
        ring = [(0, 0), (1, 0), (1, 1), (0, 1)]
        for side in (0, 1):
            corners = [c for c in range(8) if CORNERS[c][axis] == side]
            faces.append(sorted(corners, key=lambda c: ring.index((CORNERS[c][u], CORNERS[c][v]))))
    return faces


def _edge(a: int, b: int) -> int:
    return CUBE_EDGES.index((min(a, b), max(a, b)))


def _polygons(case: int) -> list[list[int]]:
    """The iso-polygons (cycles of cube edges, outward) of the sign case (bit c: corner c inside)."""
    inside = [case >> c & 1 for c in range(8)]
    links: dict[int, list[int]] = {}
    for q in _cube_faces():
        crossed = [_edge(q[i], q[(i + 1) % 4]) for i in range(4) if inside[q[i]] != inside[q[(i + 1) % 4]]]
        if len(crossed) == 2:
            segments = [crossed]
        else:  # 0 or 4 crossings: cut off each inside corner
            segments = [[_edge(q[i - 1], q[i]), _edge(q[i], q[(i + 1) % 4])] for i in range(4) if inside[q[i]]]
            segments = segments if len(crossed) == 4 else []
        for a, b in segments:
            links.setdefault(a, []).append(b)
            links.setdefault(b, []).append(a)
    polygons, seen = [], set()
    for start in sorted(links):
        if start in seen:
            continue
        cycle, prev = [start], None
        while True:
            seen.add(cycle[-1])
            nxt = next(n for n in links[cycle[-1]] if n != prev)
            if nxt == start:
                break
            prev = cycle[-1]
            cycle.append(nxt)
        mid = np.array([(CORNERS[a] + CORNERS[b]) / 2 for a, b in (CUBE_EDGES[e] for e in cycle)])
        normal = sum(np.cross(mid[i], mid[(i + 1) % len(mid)]) for i in range(len(mid)))  # Newell
        outward = sum((CORNERS[b] - CORNERS[a]) * (1 if inside[a] else -1) for a, b in (CUBE_EDGES[e] for e in cycle))
        polygons.append(cycle if normal @ outward > 0 else cycle[::-1])
    return polygons


def _fan(polygon: list[int]) -> list[tuple[int, int, int]]:
    """Triangles of a polygon of cube edges: the fan, from the apex whose triangles (at the edge
    midpoints) have the largest smallest angle, so few slivers (whose normals, and gradients, are
    the most sensitive)."""

    def min_angle(tri):
        p = np.array([(CORNERS[a] + CORNERS[b]) / 2 for a, b in (CUBE_EDGES[e] for e in tri)])
        angles = []
        for i in range(3):
            u, v = p[i - 1] - p[i], p[(i + 1) % 3] - p[i]
            angles.append(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
        return min(angles)

    fans = []
    for k in range(len(polygon)):
        q = polygon[k:] + polygon[:k]
        fans.append([(q[0], q[i], q[i + 1]) for i in range(1, len(q) - 1)])
    return max(fans, key=lambda fan: min(min_angle(t) for t in fan))


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cube edges' base corner offsets (12, 3) and directions (12,) into DIRS; the triangles
    (256, MAX_TRIANGLES, 3) of each sign case as cube edge indices, -1 past the case's last."""
    base = CORNERS[[a for a, _ in CUBE_EDGES]]
    dirs = np.array([DIRS.index(tuple(CORNERS[b] - CORNERS[a])) for a, b in CUBE_EDGES])
    tris = np.full((256, MAX_TRIANGLES, 3), -1, np.int64)
    for case in range(256):
        fan = [tri for p in _polygons(case) for tri in _fan(p)]
        if fan:
            tris[case, : len(fan)] = fan
    return base, dirs, tris


@functools.lru_cache(maxsize=None)
def _device_tables(device: torch.device) -> tuple[torch.Tensor, ...]:
    """`_tables()` and DIRS as tensors on `device`, copied there once (a host-to-device copy of
    pageable memory waits for the device: it must not happen every step)."""
    return tuple(torch.from_numpy(a).to(device) for a in (*_tables(), np.array(DIRS)))


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

    def trimmed(self) -> Topology:
        """The same without the slots no sample uses. It reads the counts on the host: for the CPU,
        where there is no device to keep busy and the budget's unused slots would be pure cost."""
        f = max(1, min(int(self.face_count.max()), self.faces.shape[1]))
        v = max(1, min(int(self.vertex_count.max()), self.edges.shape[1]))
        return Topology(self.edges[:, :v], self.faces[:, :f], self.face_count, self.vertex_count)


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
    """Marching cubes on SDF grids `values` (B, R, R, R) (index order x, y, z; < 0 inside)."""
    b, r = values.shape[0], values.shape[1]
    dev = values.device
    base, dirs, tris, _ = _device_tables(dev)
    inside = values < 0
    c = r - 1
    # vertices: the grid edges along the axes whose ends differ in sign, in edge-id order
    crossed = torch.zeros(b, r, r, r, 7, dtype=torch.bool, device=dev)
    for axis in range(3):
        d = [int(i == axis) for i in range(3)]
        crossed[:, : r - d[0], : r - d[1], : r - d[2], DIRS.index(tuple(d))] = (
            inside[:, : r - d[0], : r - d[1], : r - d[2]] != inside[:, d[0] :, d[1] :, d[2] :]
        )
    crossed = crossed.reshape(b, -1)
    edges, _, vertex_count = _compact(crossed, max_vertices)
    vertex_of_edge = crossed.cumsum(1) - 1  # a crossed edge's vertex slot
    # triangles: the sign case of each cube, MAX_TRIANGLES slots each
    case = sum(
        inside[:, x : x + c, y : y + c, z : z + c].reshape(b, -1).long() << i for i, (x, y, z) in enumerate(CORNERS)
    )  # (B, C^3)
    slot_ok = tris[case, :, 0] >= 0  # (B, C^3, MAX_TRIANGLES)
    slots, filled, face_count = _compact(slot_ok.reshape(b, -1), max_faces)
    cube, slot = slots // MAX_TRIANGLES, slots % MAX_TRIANGLES
    tri = tris[case.gather(1, cube), slot]  # (B, F, 3) cube edges
    origin = torch.stack([cube // c**2, cube // c % c, cube % c], dim=-1)  # (B, F, 3)
    point = origin[:, :, None] + base[tri]  # (B, F, 3, 3)
    edge_id = ((point[..., 0] * r + point[..., 1]) * r + point[..., 2]) * 7 + dirs[tri]
    faces = vertex_of_edge.gather(1, edge_id.reshape(b, -1)).reshape(b, max_faces, 3)
    ok = filled & (faces >= 0).all(-1) & (faces < max_vertices).all(-1)
    faces = torch.where(ok[..., None], faces, torch.zeros_like(faces))
    return Topology(edges, faces, face_count, vertex_count)


def edge_ends(edges: torch.Tensor, resolution: int, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """World positions (..., 3) of the two ends of grid edges (ids as in `topology`) of a grid of
    `resolution` points per side spanning [-bound, bound]^3."""
    r = resolution
    point, d = edges // 7, edges % 7
    ijk = torch.stack([point // r**2, point // r % r, point % r], dim=-1)
    step = 2 * bound / (r - 1)
    dir_vec = _device_tables(edges.device)[3]
    return ijk.float() * step - bound, (ijk + dir_vec[d]).float() * step - bound
