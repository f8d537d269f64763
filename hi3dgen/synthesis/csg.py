"""Solid-modelling helpers over manifold3d that the DetailVerse families share.

Everything is a closed manifold solid, so every boolean result is watertight. Curved surfaces use
at least `SEGMENTS` facets per turn (7.5° apart; small parts 11.25°), under the 15° sharp-edge
threshold: only designed creases (steps, chamfers, grooves, seams between parts) count as sharp
edges, never tessellation. Parts that meet overlap by a margin instead of touching, because
coplanar contact faces make booleans emit slivers that later vertex merging would tear open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import trimesh
from manifold3d import CrossSection, Error, Manifold, Mesh, OpType
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from hi3dgen.assets.mesh import AssetError

SEGMENTS = 48
WELD_RADIUS = 1e-6  # on the unit-size asset: far below any designed feature, above float32 noise
NEEDLE_HEIGHT = 1e-7  # triangles thinner than this are slivers that trimesh would drop
WELD_ROUNDS = 4


def union(parts: Iterable[Manifold]) -> Manifold:
    return Manifold.batch_boolean(list(parts), OpType.Add)


def subtract(base: Manifold, tools: Iterable[Manifold]) -> Manifold:
    tools = list(tools)
    return Manifold.batch_boolean([base, *tools], OpType.Subtract) if tools else base


def intersect(parts: Iterable[Manifold]) -> Manifold:
    return Manifold.batch_boolean(list(parts), OpType.Intersect)


def box(x: float, y: float, z: float) -> Manifold:
    """A box centred at the origin."""
    return Manifold.cube((x, y, z), center=True)


def chamfered_box(x: float, y: float, z: float, c: float) -> Manifold:
    """A box centred at the origin whose 12 edges are chamfered by `c` (hull of three slabs)."""
    c = min(c, 0.45 * min(x, y, z))
    return Manifold.batch_hull(
        [box(x, y - 2 * c, z - 2 * c), box(x - 2 * c, y, z - 2 * c), box(x - 2 * c, y - 2 * c, z)]
    )


def cylinder(h: float, r: float, r_top: float | None = None, segments: int = SEGMENTS) -> Manifold:
    """A cylinder (or cone frustum) on the z axis from z=0 to z=h."""
    return Manifold.cylinder(h, r, r if r_top is None else r_top, segments)


def lathe(profile: Sequence[tuple[float, float]], segments: int = SEGMENTS, degrees: float = 360.0) -> Manifold:
    """Revolve a closed (r, z) profile (r >= 0) around the z axis, from +x counter-clockwise."""
    return Manifold.revolve(CrossSection([np.asarray(profile, dtype=float)]), segments, degrees)


def prism(polygon: np.ndarray, h: float, divisions: int = 0, twist: float = 0.0, scale_top: float = 1.0) -> Manifold:
    """Extrude an (n, 2) counter-clockwise polygon along z from 0 to h."""
    section = CrossSection([np.asarray(polygon, dtype=float)])
    return Manifold.extrude(section, h, divisions, twist, (scale_top, scale_top))


def regular_polygon(n: int, r: float, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.c_[r * np.cos(t), r * np.sin(t)]


def radial_polygon(radius_of_angle, samples: int) -> np.ndarray:
    """A star-shaped polygon r(theta) sampled at `samples` angles (gear, knurl, thread sections)."""
    t = 2 * np.pi * np.arange(samples) / samples
    r = radius_of_angle(t)
    return np.c_[r * np.cos(t), r * np.sin(t)]


def frame(normal: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """A rotation whose z axis is `normal` and whose y axis leans towards `up`."""
    z = np.asarray(normal, dtype=float)
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross((1.0, 0.0, 0.0), z)
    x /= np.linalg.norm(x)
    return np.c_[x, np.cross(z, x), z]


def place(part: Manifold, origin: Sequence[float], rotation: np.ndarray | None = None) -> Manifold:
    """Rotate `part` (3x3 matrix) then move its origin to `origin`."""
    rot = np.eye(3) if rotation is None else rotation
    return part.transform(np.c_[rot, np.asarray(origin, dtype=float)])


def around(part: Manifold, n: int, phase_deg: float = 0.0) -> list[Manifold]:
    """`n` copies of `part` rotated evenly about the z axis."""
    return [part.rotate((0.0, 0.0, phase_deg + 360.0 * i / n)) for i in range(n)]


def to_asset_mesh(solid: Manifold) -> trimesh.Trimesh:
    """The solid as a +Y-up, unit-size float32 triangle mesh, ready for `normalize` and `save_glb`.

    Booleans can leave distinct vertices a hair apart and needle triangles along shared lines;
    vertex merging and degenerate-face removal downstream (trimesh, the metrics) would tear those
    open. So vertices closer than `WELD_RADIUS` and the short edge of every needle are welded
    here, and manifold3d collapses the triangles that degenerate.
    """
    if solid.is_empty():
        raise AssetError("empty_csg", f"the CSG result is empty ({solid.status().name})")
    solid = solid.rotate((-90.0, 0.0, 0.0))
    bounds = np.asarray(solid.bounding_box(), dtype=np.float64)
    lo, hi = bounds[:3], bounds[3:]
    solid = solid.translate(tuple(-(lo + hi) / 2)).scale(tuple([1.0 / float((hi - lo).max())] * 3))
    verts, tris = _arrays(solid.to_mesh())
    for _ in range(WELD_ROUNDS):  # a collapse can leave a new needle beside it
        pairs = np.concatenate(
            [cKDTree(verts).query_pairs(WELD_RADIUS, output_type="ndarray"), _needle_edges(verts, tris)]
        )
        if not len(pairs):
            break
        n = len(verts)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        label = connected_components(graph, directed=False)[1]
        first = np.full(label.max() + 1, n)
        np.minimum.at(first, label, np.arange(n))
        src = np.nonzero(first[label] != np.arange(n))[0].astype(np.uint32)
        welded = Manifold(
            Mesh(
                vert_properties=verts,
                tri_verts=tris,
                merge_from_vert=src,
                merge_to_vert=first[label][src].astype(np.uint32),
            )
        )
        if welded.status() != Error.NoError or welded.is_empty():
            break
        verts, tris = _arrays(welded.to_mesh())
    return trimesh.Trimesh(vertices=verts.astype(np.float64), faces=tris.astype(np.int64), process=False)


def _needle_edges(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """The shortest edge (vertex pair) of every triangle thinner than `NEEDLE_HEIGHT`."""
    p = verts.astype(np.float64)[tris]
    edge = np.linalg.norm(p[:, [1, 2, 0]] - p, axis=2)
    area2 = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    thin = np.nonzero(area2 < NEEDLE_HEIGHT * edge.max(axis=1))[0]
    k = edge[thin].argmin(axis=1)
    return np.c_[tris[thin, k], tris[thin, (k + 1) % 3]].astype(np.int64)


def _arrays(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Writable copies: manifold3d's Mesh constructor refuses its own read-only views."""
    verts = np.array(np.asarray(mesh.vert_properties)[:, :3], dtype=np.float32, order="C")
    return verts, np.array(mesh.tri_verts, dtype=np.uint32, order="C")
