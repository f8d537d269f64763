"""Machine parts that several families reuse: fasteners, threads, gears, rivets, chamfered discs.

All parts stand on the z axis with their base at z=0 (or sunk below it where they join a surface).
"""

from __future__ import annotations

import math

import numpy as np
from manifold3d import Manifold, Mesh64

from hi3dgen.synthesis import csg

SMALL_SEGMENTS = 32  # small repeated parts: 11.25° facets, still below the sharp threshold
TAN30 = math.tan(math.radians(30))


def chamfered_disc(
    r: float, h: float, c_bottom: float = 0.0, c_top: float = 0.0, segments: int = csg.SEGMENTS
) -> Manifold:
    """A cylinder from z=0 to z=h with 45° chamfers of the given sizes on its rims."""
    pts = [(0.0, 0.0), (r - c_bottom, 0.0)]
    if c_bottom:
        pts.append((r, c_bottom))
    pts.append((r, h - c_top))
    if c_top:
        pts.append((r - c_top, h))
    pts.append((0.0, h))
    return csg.lathe(pts, segments)


def hex_nut(across_flats: float, h: float, chamfer_bottom: bool = True) -> Manifold:
    """A hexagon prism with the 30° corner chamfers of a real nut (curved creases on each flat)."""
    r_corner = across_flats / math.sqrt(3)
    body = csg.prism(csg.regular_polygon(6, r_corner, math.pi / 6), h)
    r0, rx, d = 0.95 * across_flats / 2, 1.05 * r_corner, 0.1 * h
    rise = (rx - r0) * TAN30
    bottom = [(0.0, -d), (r0 - d / TAN30, -d), (rx, rise)]
    if not chamfer_bottom:
        bottom = [(0.0, -d), (rx, -d)]
    top = [(rx, h - rise), (r0 - d / TAN30, h + d), (0.0, h + d)]
    # Half a facet off, so no vertex of the chamfer cone lies on a corner edge of the hexagon.
    return body ^ csg.lathe(bottom + top).rotate((0, 0, 180 / csg.SEGMENTS))


def rivet(r: float, h: float, embed: float) -> Manifold:
    """A flat-topped, chamfered rivet head, sunk `embed` below z=0 into the skin it holds."""
    return csg.lathe([(0.0, -embed), (r, -embed), (r, 0.55 * h), (0.65 * r, h), (0.0, h)], SMALL_SEGMENTS)


def thread(r_core: float, pitch: float, length: float, starts: int = 1) -> Manifold:
    """A helical V thread on a core cylinder from z=0 to z=length: a triangle swept along the helix
    as an explicit watertight tube, united with the core and cut to length."""
    depth = 0.6 * pitch
    lead = pitch * starts
    turns = (length + 2 * pitch) / lead
    steps = max(2, math.ceil(turns * csg.SEGMENTS))
    theta = np.linspace(0.0, 2 * math.pi * turns, steps + 1) + math.pi / csg.SEGMENTS
    tubes = [csg.cylinder(length + 2 * pitch, r_core).translate((0, 0, -pitch))]
    r_in = r_core - 0.15 * depth
    for s in range(starts):
        z0 = lead * (theta - theta[0]) / (2 * math.pi) + (s - 1) * pitch
        ang = theta + 2 * math.pi * s / starts
        ring = [(r_in, -0.4 * pitch), (r_core + depth, 0.0), (r_in, 0.4 * pitch)]
        verts = (
            np.concatenate([np.c_[r * np.cos(ang), r * np.sin(ang), z0 + dz] for r, dz in ring])
            .reshape(3, steps + 1, 3)
            .transpose(1, 0, 2)
            .reshape(-1, 3)
        )
        tubes.append(_sweep_solid(verts, steps))
    return csg.union(tubes).trim_by_plane((0, 0, 1), 0.0).trim_by_plane((0, 0, -1), -length)


def _sweep_solid(verts: np.ndarray, steps: int) -> Manifold:
    """Close a tube of `steps + 1` triangular rings (3 vertices each) into a solid."""
    faces = []
    for k in range(steps):
        a, b = 3 * k, 3 * (k + 1)
        for i in range(3):
            j = (i + 1) % 3
            faces += [(a + i, b + j, a + j), (a + i, b + i, b + j)]
    last = 3 * steps
    faces += [(0, 1, 2), (last + 2, last + 1, last)]
    faces = np.asarray(faces, dtype=np.uint32)
    v = verts[faces]
    if np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() < 0:
        faces = faces[:, ::-1].copy()
    return Manifold(Mesh64(vert_properties=np.ascontiguousarray(verts), tri_verts=faces))


def gear(teeth: int, module: float, h: float, twist: float = 0.0, chamfer: float | None = None) -> Manifold:
    """A gear of trapezoid teeth from z=0 to z=h (helical when twisted), tooth tips chamfered."""
    r_pitch = module * teeth / 2
    r_tip, r_root = r_pitch + module, r_pitch - 1.25 * module
    pts = [
        (r * math.cos(2 * math.pi * (i + u) / teeth), r * math.sin(2 * math.pi * (i + u) / teeth))
        for i in range(teeth)
        for u, r in ((0.15, r_root), (0.38, r_tip), (0.62, r_tip), (0.85, r_root))
    ]
    divisions = math.ceil(abs(twist) / 2.0)
    body = csg.prism(np.asarray(pts), h, divisions, twist)
    c = 0.35 * module if chamfer is None else chamfer
    d = 0.1 * h
    cone = csg.lathe(
        [
            (0.0, -d),
            (r_tip - c - d, -d),
            (r_tip + c, 2 * c),
            (r_tip + c, h - 2 * c),
            (r_tip - c - d, h + d),
            (0.0, h + d),
        ],
        2 * csg.SEGMENTS,
    )
    return body ^ cone
