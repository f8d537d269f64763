"""DetailVerse generator families: man-made and organic objects whose sharp edges come from
structure (chamfers, grooves, teeth, threads, knurls, rivets, lattices, holes, repeated parts,
relief on organic bases), built as CSG on closed solids.

A family is `fn(params: Params) -> Manifold` (z up, any scale); it draws every choice from
`params`, which records the named ones for the manifest row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from manifold3d import Manifold

from hi3dgen.synthesis import csg, parts
from hi3dgen.synthesis.csg import (
    around,
    box,
    chamfered_box,
    cylinder,
    frame,
    lathe,
    place,
    subtract,
    union,
)

GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


class Params:
    """Draws a family's parameters from the per-asset RNG and records them, rounded, by name."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.values: dict = {}

    def uniform(self, name: str, lo: float, hi: float) -> float:
        self.values[name] = round(float(self.rng.uniform(lo, hi)), 4)
        return self.values[name]

    def integer(self, name: str, lo: int, hi: int) -> int:
        """An integer in [lo, hi], both included."""
        self.values[name] = int(self.rng.integers(lo, hi + 1))
        return self.values[name]

    def choice(self, name: str, options: list):
        self.values[name] = options[int(self.rng.integers(len(options)))]
        return self.values[name]


FAMILIES: dict[str, Callable[[Params], Manifold]] = {}


def family(fn: Callable[[Params], Manifold]) -> Callable[[Params], Manifold]:
    FAMILIES[fn.__name__] = fn
    return fn


@family
def gear_train(p: Params) -> Manifold:
    """Compound gear train on a bolted base plate: spur or helical teeth with chamfered tips,
    lightening holes, keyed bores, hubs, shafts and nuts."""
    module = p.uniform("module", 0.8, 1.2)
    shafts = p.integer("shafts", 3, 4)
    width = p.uniform("face_width", 4.0, 7.0)
    helix = p.choice("helix_deg", [0.0, 15.0, 25.0])
    big = [p.integer(f"teeth_big_{i}", 30, 48) for i in range(shafts)]
    lightening = p.integer("lightening_holes", 4, 7)
    small = {i: p.integer(f"teeth_small_{i}", 12, 18) for i in range(1, shafts)}
    level = width * 1.37
    centers, heading = [np.zeros(2)], 0.0
    for i in range(1, shafts):
        heading += float(p.rng.uniform(-1.2, 1.2))
        dist = module * (big[i - 1] + small[i]) / 2 + 0.3 * module
        centers.append(centers[-1] + dist * np.array([math.cos(heading), math.sin(heading)]))
    solids = []
    for i, c in enumerate(centers):
        # Shaft i carries its big gear on level i+1 and, from the second shaft on, a pinion on
        # level i meshing with the previous big gear (a bit wider, so no faces coincide).
        gears = [(big[i], (i + 1) * level, width)]
        if i:
            gears.append((small[i], i * level - 0.11 * width, 1.22 * width))
        stack = []
        for teeth, z, w in gears:
            r_pitch = module * teeth / 2
            twist = math.degrees(w * math.tan(math.radians(helix)) / r_pitch)
            g = parts.gear(teeth, module, w, twist if i % 2 else -twist)
            r_root = r_pitch - 1.25 * module
            if r_root > 10 * module:
                holes = around(cylinder(3 * w, 0.22 * r_root).translate((0.6 * r_root, 0, -w)), lightening)
                g = subtract(g, holes)
            stack.append(g.translate((0, 0, z)))
        hub_r = 2.2 * module + 1.0
        hub = parts.chamfered_disc(hub_r, level * (i + 1.4), 0.0, 0.3).translate((0, 0, 0.5))
        bore = union(
            [
                cylinder(50 * width, 0.55 * hub_r),
                box(0.5 * hub_r, 0.3 * hub_r, 50 * width).translate((0.55 * hub_r, 0, 0)),
            ]
        )
        shaft = subtract(union([*stack, hub]), [bore.translate((0, 0, level * (i + 1)))])
        nut = parts.hex_nut(1.6 * hub_r, 0.8 * hub_r).translate((0, 0, level * (i + 1.4) + 0.4))
        rod = parts.thread(0.5 * hub_r, 0.18 * hub_r, 2.2 * hub_r).translate((0, 0, level * (i + 1.4) + 0.3))
        solids.append(union([shaft, nut, rod]).translate((c[0], c[1], 0)))
    pts = np.array(centers)
    margin = module * max(big) / 2 + 3 * module
    lo, hi = pts.min(0) - margin, pts.max(0) + margin
    size = hi - lo
    plate = chamfered_box(size[0], size[1], 1.2, 0.3).translate((*(lo + hi) / 2, 0.0))
    bolts = []
    for x in np.linspace(lo[0] + 1.5, hi[0] - 1.5, max(2, int(size[0] / 6))):
        for y in (lo[1] + 1.5, hi[1] - 1.5):
            bolts.append(parts.hex_nut(1.8, 0.9, chamfer_bottom=False).translate((x, y, 0.5)))
    return union([plate, *bolts, *solids])


@family
def fastener_set(p: Params) -> Manifold:
    """Bolts through a chamfered plate: chamfered hex heads and nuts, washers, helical threads
    with chamfered tips."""
    nx, ny = p.integer("cols", 3, 4), p.integer("rows", 1, 2)
    d = p.uniform("diameter", 1.0, 1.6)
    pitch = p.uniform("pitch_ratio", 0.12, 0.18) * d
    starts = p.choice("starts", [1, 1, 2])
    length = p.uniform("length_ratio", 3.0, 4.5) * d
    gap, t = 2.6 * d, 0.5 * d
    washer = parts.chamfered_disc(0.95 * d, 0.12 * d, 0.03 * d, 0.03 * d)
    rod = parts.thread(d / 2, pitch, length, starts) ^ lathe(
        [
            (0, -0.1),
            (d, -0.1),
            (d, length - 0.9 * pitch),
            (d / 2 - 0.7 * pitch, length + 0.2 * pitch),
            (0, length + 0.2 * pitch),
        ]
    )
    bolt = union(
        [
            rod.rotate((180, 0, 0)).translate((0, 0, t / 2 + 0.1 * d)),
            washer.translate((0, 0, t / 2 - 0.01 * d)),
            parts.hex_nut(1.5 * d, 0.65 * d, chamfer_bottom=False).translate((0, 0, t / 2 + 0.1 * d)),
            washer.rotate((180, 0, 0)).translate((0, 0, -t / 2 + 0.01 * d)),
            parts.hex_nut(1.5 * d, 0.8 * d).translate((0, 0, -t / 2 - 0.9 * d)),
        ]
    )
    solids = [chamfered_box(nx * gap + d, ny * gap + d, t, 0.12 * d)]
    for ix in range(nx):
        for iy in range(ny):
            xy = ((ix - (nx - 1) / 2) * gap, (iy - (ny - 1) / 2) * gap, 0.0)
            solids.append(bolt.rotate((0, 0, float(p.rng.uniform(0, 60)))).translate(xy))
    return union(solids)


@family
def knurled_knob(p: Params) -> Manifold:
    """Control knob: diamond knurl (two opposite helical star prisms intersected), chamfered cap
    with engraved rings and index mark, fluted skirt, set-screw hole."""
    r = p.uniform("radius", 1.0, 1.4)
    h = p.uniform("height", 0.9, 1.4) * r
    teeth = p.integer("knurl_teeth", 36, 56)
    angle = p.uniform("knurl_angle_deg", 30.0, 45.0)
    depth = 0.045 * r
    rows = max(4, round(h * math.tan(math.radians(angle)) / r * teeth / math.pi))
    star = csg.radial_polygon(lambda t: r - depth * np.abs(np.sin(teeth * t / 2)), teeth * 8)
    twist = math.degrees(h * math.tan(math.radians(angle)) / r)
    a = csg.prism(star, h, rows, twist)
    b = csg.prism(star, h * 1.2137, rows + 7, -twist * 1.2137).translate((0, 0, -0.1 * h))
    knurl = (a ^ b).translate((0, 0, 0.25 * h))
    skirt_r = r * p.uniform("skirt_ratio", 1.15, 1.35)
    skirt = parts.chamfered_disc(skirt_r, 0.3 * h, 0.05 * r, 0.08 * r)
    flutes = around(
        cylinder(h, 0.06 * r, segments=parts.SMALL_SEGMENTS).translate((skirt_r, 0, -0.1 * h)),
        p.integer("skirt_flutes", 24, 40),
    )
    skirt = subtract(skirt, flutes)
    cap_h = 0.2 * h
    cap = parts.chamfered_disc(r * 0.985, cap_h, 0.0, 0.12 * r).translate((0, 0, 1.2 * h))
    grooves = [
        lathe(
            [
                (ri, 1.2 * h + cap_h - 0.04 * r),
                (ri + 0.03 * r, 1.2 * h + cap_h + 0.1),
                (ri - 0.03 * r, 1.2 * h + cap_h + 0.1),
            ]
        )
        for ri in np.linspace(0.2 * r, 0.7 * r, p.integer("cap_rings", 3, 6))
    ]
    mark = box(0.06 * r, 0.5 * r, 0.2 * r).translate((0, 0.55 * r, 1.2 * h + cap_h))
    body = union([skirt, knurl, cap, cylinder(1.3 * h, 0.9 * r).translate((0, 0, 0.05 * h))])
    set_screw = cylinder(r, 0.12 * r).rotate((0, 90, 0)).translate((0, 0, 0.15 * h))
    bore = cylinder(0.9 * h, 0.3 * r).translate((0, 0, -0.1 * h))
    flat = box(0.2 * r, 0.8 * r, 0.9 * h).translate((0.3 * r, 0, 0.3 * h))
    return subtract(body, [*grooves, mark, set_screw, subtract(bore, [flat])])


@family
def riveted_panel(p: Params) -> Manifold:
    """Curved aircraft skin panel: panel-line grooves, double rows of rivets along every line, and
    a recessed access hatch held by screws."""
    radius = p.uniform("radius", 8.0, 14.0)
    span = p.uniform("span_deg", 40.0, 70.0)
    height = p.uniform("height", 6.0, 9.0)
    t = 0.25
    bands = p.integer("horizontal_lines", 3, 5)
    frames = p.integer("vertical_lines", 2, 4)
    pitch = p.uniform("rivet_pitch", 0.28, 0.4)
    outer = radius + t
    skin = lathe([(radius, 0), (outer, 0), (outer, height), (radius, height)], 4 * csg.SEGMENTS, span)
    cuts, rivets = [], []
    rivet = parts.rivet(0.07, 0.05, 0.06)

    def on_skin(part: Manifold, ang_deg: float, z: float) -> Manifold:
        a = math.radians(ang_deg)
        n = (math.cos(a), math.sin(a), 0.0)
        return place(part, (outer * n[0], outer * n[1], z), frame(n))

    for z in np.linspace(0, height, bands + 2)[1:-1]:
        cuts.append(
            lathe(
                [(outer - 0.04, z - 0.025), (outer + 1, z - 0.025), (outer + 1, z + 0.025), (outer - 0.04, z + 0.025)],
                4 * csg.SEGMENTS,
            )
        )
        n = int(math.radians(span) * outer / pitch)
        for dz in (-0.18, 0.18):
            rivets += [on_skin(rivet, a, z + dz) for a in np.linspace(0, span, n + 2)[1:-1]]
    for a in np.linspace(0, span, frames + 2)[1:-1]:
        cuts.append(on_skin(box(0.05, height * 2, 0.08), a, height / 2))
        dang = math.degrees(0.18 / outer)
        for side in (-dang, dang):
            rivets += [on_skin(rivet, a + side, z) for z in np.linspace(0, height, int(height / pitch) + 2)[1:-1]]
    hatch_a = span * (0.5 + 0.5 / (frames + 1))
    hatch_z = height * (0.5 + 0.5 / (bands + 1))
    cuts.append(on_skin(chamfered_box(1.6, 1.1, 0.16, 0.05), hatch_a, hatch_z))
    slot = box(0.1, 0.015, 0.05).translate((0, 0, 0.03))
    screw = subtract(
        parts.chamfered_disc(0.06, 0.03, 0.0, 0.015, parts.SMALL_SEGMENTS), [slot, slot.rotate((0, 0, 90))]
    )
    screws = [
        on_skin(screw.translate((sx, sy, -0.09)), hatch_a, hatch_z)
        for sx in np.linspace(-0.65, 0.65, 5)
        for sy in (-0.42, 0.42)
    ]
    return union([subtract(skin, cuts), *rivets, *screws])


@family
def lattice_block(p: Params) -> Manifold:
    """Strut lattice (cubic, optionally body-centred) of octagonal struts with chamfered node
    blocks, trimmed by a chamfered envelope and standing on a bolted base plate."""
    bcc = p.choice("body_centred", [False, True])
    cells = p.integer("cells", 4, 4) if bcc else p.integer("cells", 6, 7)
    strut = p.uniform("strut_ratio", 0.1, 0.16)
    envelope = p.choice("envelope", ["box", "cylinder"])
    size = float(cells)
    section = csg.regular_polygon(8, strut / 2 / math.cos(math.pi / 8), math.pi / 8)
    rod = csg.prism(section, size + 1.0).translate((0, 0, -size / 2 - 0.5))
    ticks = np.linspace(-size / 2, size / 2, cells + 1)
    struts = []
    for a in ticks:
        for b in ticks:
            struts += [
                rod.translate((a, b, 0)),
                rod.rotate((90, 0, 0)).translate((a, 0, b)),
                rod.rotate((0, 90, 0)).translate((0, a, b)),
            ]
    node = chamfered_box(2.2 * strut, 2.2 * strut, 2.2 * strut, 0.5 * strut)
    struts += [node.translate((x, y, z)) for x in ticks for y in ticks for z in ticks]
    if bcc:
        diag = csg.prism(section * 0.8, math.sqrt(3)).translate((0, 0, -math.sqrt(3) / 2))
        centers = [(x, y, z) for x in ticks[:-1] + 0.5 for y in ticks[:-1] + 0.5 for z in ticks[:-1] + 0.5]
        for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            tilt = csg.frame((sx, sy, 1.0), (1.0, 0.0, 0.0))
            struts += [place(diag, c, tilt) for c in centers]
    lattice = union(struts)
    inner = size + 0.37 * strut
    if envelope == "box":
        hull = chamfered_box(inner, inner, inner, 0.25 * size)
    else:
        hull = parts.chamfered_disc(inner / 2, inner, 0.1 * size, 0.1 * size, 2 * csg.SEGMENTS).translate(
            (0, 0, -inner / 2)
        )
    base = chamfered_box(size + 1.2, size + 1.2, 0.4, 0.1).translate((0, 0, -inner / 2 - 0.15))
    bolt = parts.hex_nut(0.35, 0.2, chamfer_bottom=False)
    bolts = [
        bolt.translate((sx * (size / 2 + 0.35), sy * (size / 2 + 0.35), -inner / 2)) for sx in (-1, 1) for sy in (-1, 1)
    ]
    return union([lattice ^ hull, base, *bolts])


@family
def vented_enclosure(p: Params) -> Manifold:
    """Electronics enclosure: chamfered shell with a drilled speaker grille, rows of vent slots,
    panel-line grooves, counterbored corner screws, buttons and chamfered feet."""
    w, d = p.uniform("width", 6.0, 9.0), p.uniform("depth", 4.0, 6.0)
    h = p.uniform("height", 1.8, 3.0)
    hole_r = p.uniform("grille_hole_radius", 0.05, 0.08)
    grille_pitch = hole_r * p.uniform("grille_pitch_ratio", 2.4, 3.0)
    slots = p.integer("vent_slots", 10, 18)
    body = chamfered_box(w, d, h, 0.18)
    cuts = []
    gx, gy = 0.5 * w, 0.6 * d
    hole = cylinder(0.2, hole_r, segments=parts.SMALL_SEGMENTS).translate((0, 0, h / 2 - 0.12))
    for x in np.arange(-gx / 2, gx / 2, grille_pitch):
        for j, y in enumerate(np.arange(-gy / 2, gy / 2, grille_pitch * 0.866)):
            cuts.append(hole.translate((x + (j % 2) * grille_pitch / 2 - 0.2 * w, y, 0)))
    pin = cylinder(0.5, 0.06, segments=parts.SMALL_SEGMENTS).rotate((90, 0, 0))
    for z in (-0.2 * h, 0.2 * h):
        slot = Manifold.batch_hull([pin.translate((0, 0, z + dz)) for dz in (-0.1 * h, 0.1 * h)])
        cuts += [slot.translate((x, -d / 2 + 0.15, 0)) for x in np.linspace(-0.4 * w, 0.4 * w, slots)]
    ring = subtract(box(w + 1, d + 1, 0.05), [box(w - 0.1, d - 0.1, 0.1)])
    cuts += [ring.translate((0, 0, z)) for z in (-0.3 * h, 0.3 * h)]
    counterbore = union([cylinder(0.3, 0.17), cylinder(1.0, 0.09).translate((0, 0, -0.9))])
    screw = subtract(
        parts.chamfered_disc(0.15, 0.08, 0.0, 0.04),
        [box(0.22, 0.035, 0.1).translate((0, 0, 0.07)), box(0.035, 0.22, 0.1).translate((0, 0, 0.07))],
    )
    corners = [(sx * (w / 2 - 0.45), sy * (d / 2 - 0.45)) for sx in (-1, 1) for sy in (-1, 1)]
    cuts += [counterbore.translate((x, y, h / 2 - 0.15)) for x, y in corners]
    adds = [screw.translate((x, y, h / 2 - 0.16)) for x, y in corners]
    button = chamfered_box(0.45, 0.3, 0.3, 0.07)
    adds += [button.translate((0.3 * w + dx, 0.1 * d, h / 2)) for dx in (-0.3, 0.3)]
    foot = parts.chamfered_disc(0.3, 0.2, 0.0, 0.06).rotate((180, 0, 0))
    adds += [foot.translate((x * 0.9, y * 0.9, -h / 2 + 0.03)) for x, y in corners]
    return union([subtract(body, cuts), *adds])


def _baluster_profile(p: Params, height: float, radius: float) -> list[tuple[float, float]]:
    """A random turned profile of steps, V-grooves, chamfers and smooth bulbs and beads."""
    pts = [(0.0, 0.0), (radius * 0.8, 0.0)]
    z, r = 0.0, radius * 0.8
    elements = p.integer("profile_elements", 12, 18)
    for _ in range(elements):
        kind = p.rng.choice(["step", "groove", "chamfer", "bulb", "bead"], p=[0.3, 0.3, 0.2, 0.1, 0.1])
        dz = height / elements
        if kind == "step":
            r = float(p.rng.uniform(0.35, 0.95)) * radius
            pts += [(r, z), (r, z + dz)]
        elif kind == "groove":
            pts += [(r * (0.85 if k % 2 else 1.0), z + 0.2 * (k + 1) * dz) for k in range(5)]
        elif kind == "chamfer":
            r2 = float(p.rng.uniform(0.35, 0.95)) * radius
            pts += [(r2, z + 0.5 * dz), (r2, z + dz)]
            r = r2
        else:
            amp = (0.25 if kind == "bulb" else 0.12) * radius
            t = np.linspace(0, 1, 9)[1:-1]
            pts += [(min(r + amp * math.sin(math.pi * ti), radius), z + ti * dz) for ti in t]
            pts.append((r, z + dz))
        z += dz
    return pts + [(0.0, height)]


@family
def balustrade(p: Params) -> Manifold:
    """Balustrade: a row of identical turned balusters between moulded rails, with panelled end
    posts carrying chamfered caps and finials."""
    n = p.integer("balusters", 6, 9)
    h = p.uniform("baluster_height", 5.0, 7.0)
    radius = p.uniform("baluster_radius", 0.45, 0.6)
    spacing = 2.6 * radius
    baluster = lathe(_baluster_profile(p, h, radius), 64)
    length = (n + 1) * spacing
    moulding = np.array(
        [
            (-0.8, 0),
            (0.8, 0),
            (0.8, 0.25),
            (0.65, 0.4),
            (0.65, 0.55),
            (0.75, 0.65),
            (0.5, 0.9),
            (-0.5, 0.9),
            (-0.75, 0.65),
            (-0.65, 0.55),
            (-0.65, 0.4),
            (-0.8, 0.25),
        ]
    ) * (radius * 1.5)
    rail = csg.prism(moulding, length).rotate((90, 0, 90)).translate((-length / 2, 0, 0))
    bottom = rail.rotate((180, 0, 0)).translate((0, 0, 0.15))
    top = rail.translate((0, 0, h - 0.15))
    xs = (np.arange(n) - (n - 1) / 2) * spacing
    post_w = 3.0 * radius
    post = chamfered_box(post_w, post_w, h + 0.6, 0.12)
    panel = chamfered_box(post_w * 0.6, 0.3, h * 0.7, 0.08)
    post = subtract(post, [panel.translate((0, post_w / 2, 0)).rotate((0, 0, a)) for a in (0, 90, 180, 270)])
    t0 = math.asin(0.25 / 0.6)
    finial = lathe(
        [(0, 0), (0.5 * radius, 0), (0.5 * radius, 0.1 * radius)]
        + [
            (0.6 * radius * math.sin(t), 0.9 * radius - 0.6 * radius * math.cos(t))
            for t in np.linspace(t0, math.pi, 24)
        ],
        64,
    )
    cap = chamfered_box(post_w * 1.25, post_w * 1.25, 0.3, 0.1).translate((0, 0, h / 2 + 0.4))
    post = union([post, cap, finial.translate((0, 0, h / 2 + 0.5))])
    posts = [post.translate((side * (length / 2 + post_w / 2 - 0.3), 0, h / 2)) for side in (-1, 1)]
    dentil = chamfered_box(0.18, 0.25, 0.22, 0.04)
    dentils = [
        dentil.translate((x, side * 0.62 * radius * 1.5, h - 0.2))
        for x in np.arange(-length / 2 + 0.3, length / 2 - 0.2, 0.36)
        for side in (-1, 1)
    ]
    return union([*[baluster.translate((x, 0, 0)) for x in xs], bottom, top, *posts, *dentils])


@family
def heat_sink(p: Params) -> Manifold:
    """Pin-fin heat sink: a grid of chamfered pins on a chamfered base, counterbored mounting holes
    and a recessed thermal pad underneath."""
    nx, ny = p.integer("pins_x", 24, 32), p.integer("pins_y", 24, 32)
    pin = p.uniform("pin_width", 0.22, 0.32)
    pitch = pin * p.uniform("pitch_ratio", 1.5, 1.9)
    height = p.uniform("pin_height", 1.4, 2.4)
    shape = p.choice("pin_shape", ["square", "octagon"])
    w, d = nx * pitch + 1.2, ny * pitch + 1.2
    base = chamfered_box(w, d, 0.5, 0.1)
    if shape == "square":
        one = chamfered_box(pin, pin, height, 0.3 * pin)
    else:
        octagon = csg.regular_polygon(8, pin / 2 / math.cos(math.pi / 8), math.pi / 8)
        one = csg.prism(octagon, height, scale_top=0.7).translate((0, 0, -height / 2))
    pins = [
        one.translate(((i - (nx - 1) / 2) * pitch, (j - (ny - 1) / 2) * pitch, height / 2 + 0.1))
        for i in range(nx)
        for j in range(ny)
    ]
    holes = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            xy = (sx * (w / 2 - 0.35), sy * (d / 2 - 0.35))
            holes += [cylinder(1.0, 0.12).translate((*xy, -0.5)), cylinder(0.5, 0.22).translate((*xy, 0.1))]
    pad = chamfered_box(0.5 * w, 0.5 * d, 0.2, 0.05).translate((0, 0, -0.25))
    label = [box(0.05, 0.4 * d, 0.1).translate((x, 0, -0.15)) for x in np.linspace(-0.2 * w, 0.2 * w, 7)]
    return subtract(union([base, *pins]), [*holes, pad, *label])


@family
def tower_block(p: Params) -> Manifold:
    """Stepped tower: stacked setback sections with cornice slabs, a grid of recessed two-pane
    windows with sills on every facade, a parapet and a rooftop tank."""
    floors = p.integer("floors", 12, 20)
    fh = 1.0
    w0, d0 = p.uniform("width", 5.0, 8.0), p.uniform("depth", 4.0, 6.0)
    setbacks = p.integer("setbacks", 1, 3)
    win_pitch = p.uniform("window_pitch", 0.7, 0.9)
    breaks = sorted(int(b) for b in p.rng.choice(np.arange(3, floors - 2), setbacks, replace=False))
    pane = box(0.22 * win_pitch, 0.3, 0.55 * fh)
    window = union([pane.translate((dx * 0.14 * win_pitch, 0, 0)) for dx in (-1, 1)])
    sill = chamfered_box(0.7 * win_pitch, 0.16, 0.08, 0.03)
    solids = []
    for k, (lo, hi) in enumerate(zip([0, *breaks], [*breaks, floors])):
        w, d = w0 * 0.8**k, d0 * 0.8**k
        block = box(w, d, (hi - lo) * fh + 0.1).translate((0, 0, (lo + hi) * fh / 2))
        cuts, sills = [], []
        for face, span, depth in ((0, w, d), (90, d, w), (180, w, d), (270, d, w)):
            cols = max(1, int(span / win_pitch) - 1)
            for f in range(lo, hi):
                z = (f + 0.55) * fh
                for x in (np.arange(cols) - (cols - 1) / 2) * win_pitch:
                    cuts.append(window.translate((x, -depth / 2, z)).rotate((0, 0, face)))
                    sills.append(sill.translate((x, -depth / 2, z - 0.3 * fh)).rotate((0, 0, face)))
        solids += [subtract(block, cuts), *sills]
        solids += [chamfered_box(w + 0.3, d + 0.3, 0.18, 0.06).translate((0, 0, f * fh)) for f in range(lo + 1, hi + 1)]
    top = floors * fh
    parapet = subtract(box(w + 0.2, d + 0.2, 0.5), [box(w - 0.2, d - 0.2, 1.0)])
    tank = union([parts.chamfered_disc(0.5, 0.8, 0.0, 0.1), cylinder(0.3, 0.5, 0.05).translate((0, 0, 0.79))])
    legs = [
        chamfered_box(0.08, 0.08, 0.6, 0.02).translate((0.35 * sx, 0.35 * sy, -0.3)) for sx in (-1, 1) for sy in (-1, 1)
    ]
    solids += [
        parapet.translate((0, 0, top + 0.2)),
        union([tank, *legs]).translate((0.2 * w, 0.1 * d, top + 0.6)),
        chamfered_box(w0 + 0.6, d0 + 0.6, 0.4, 0.1).translate((0, 0, -0.1)),
    ]
    return union(solids)


def _surface_of_revolution(profile: np.ndarray, t: float) -> tuple[float, float, float, float]:
    """(r, z, dr/ds, dz/ds) at fraction t along a sampled (r, z) profile."""
    seg = np.diff(profile, axis=0)
    cum = np.r_[0, np.cumsum(np.linalg.norm(seg, axis=1))]
    s = t * cum[-1]
    i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(seg) - 1)
    u = (s - cum[i]) / max(cum[i + 1] - cum[i], 1e-12)
    r, z = profile[i] + u * seg[i]
    tangent = seg[i] / np.linalg.norm(seg[i])
    return float(r), float(z), float(tangent[0]), float(tangent[1])


@family
def pinecone(p: Params) -> Manifold:
    """Organic cone body covered by ridged, faceted scales set on a golden-angle spiral
    (phyllotaxis), on a chamfered stalk."""
    height = p.uniform("height", 5.0, 7.0)
    radius = p.uniform("radius", 1.6, 2.4)
    scales = p.integer("scales", 560, 780)
    tilt = p.uniform("scale_tilt_deg", 20.0, 40.0)
    t = np.linspace(0, 1, 40)
    profile = np.c_[radius * np.sin(np.pi * t) ** 0.7 * (1 - 0.35 * t), height * t]
    body = lathe(np.r_[profile[:-1], [(0.0, height)]], 64)
    w = 2.6 * math.pi * radius / math.sqrt(scales) * 1.1
    scale = Manifold.hull_points(
        np.array(
            [
                (-w / 2, 0, -0.1),
                (w / 2, 0, -0.1),
                (0, -0.45 * w, -0.1),
                (0, 0.6 * w, -0.1),
                (-0.2 * w, 0.35 * w, 0.25 * w),
                (0.2 * w, 0.35 * w, 0.25 * w),
                (0, 0.05 * w, 0.18 * w),
            ]
        )
    )
    pieces = [body]
    for i in range(scales):
        frac = 0.06 + 0.88 * (i + 0.5) / scales
        r, z, dr, dz = _surface_of_revolution(profile, frac)
        a = i * GOLDEN_ANGLE
        outward = np.array([dz * math.cos(a), dz * math.sin(a), -dr])
        along = np.array([dr * math.cos(a), dr * math.sin(a), dz])
        size = max(0.35, r / radius)
        leaning = scale.scale((size, size, size)).rotate((tilt, 0, 0))
        pieces.append(place(leaning, (r * math.cos(a), r * math.sin(a), z), frame(outward, along)))
    stalk = parts.chamfered_disc(0.25 * radius, 0.8, 0.05, 0.0).translate((0, 0, -0.6))
    return union([*pieces, stalk])


@family
def carved_stone(p: Params) -> Manifold:
    """Organic pebble (smoothly warped ellipsoid) carved with a meander band, a field of drilled
    dimples and a ring of raised bosses."""
    axes = np.array([p.uniform("axis_x", 1.0, 1.3), p.uniform("axis_y", 0.8, 1.1), p.uniform("axis_z", 0.7, 1.0)])
    amp = p.uniform("warp_amplitude", 0.03, 0.08)
    dimples = p.integer("dimples", 260, 380)
    keys = p.integer("meander_units", 16, 24)
    freq = p.rng.uniform(1.0, 2.5, (3, 3))
    phase = p.rng.uniform(0, 2 * math.pi, 3)

    def radial(u: np.ndarray) -> np.ndarray:
        return 1.0 + amp * np.sin(u @ freq + phase).sum(axis=1) / 3

    def surface(u: np.ndarray) -> np.ndarray:
        """The stone's surface point in each direction `u` (rows)."""
        u = u / np.linalg.norm(u, axis=-1, keepdims=True)
        return (u * axes) * radial(u)[:, None]

    stone = Manifold.sphere(1.0, 96).warp_batch(surface)

    def on_stone(part: Manifold, direction) -> Manifold:
        u = np.asarray(direction, dtype=float)[None]
        point = surface(u)[0]
        normal = (u[0] / np.linalg.norm(u[0])) / axes
        return place(part, point, frame(normal))

    cuts, adds = [], []
    k = np.arange(dimples) + 0.5
    polar = np.arccos(1 - 0.9 * k / dimples)
    for theta, phi in zip(polar, k * GOLDEN_ANGLE):
        if theta > 0.45 * math.pi:
            continue
        cuts.append(
            on_stone(
                Manifold.sphere(0.035, parts.SMALL_SEGMENTS).translate((0, 0, 0.01)),
                (math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)),
            )
        )
    stroke = box(0.025, 0.12, 0.06)
    unit = [
        (0.0, 0.0, 0.0),
        (0.06, 0.0, 90.0),
        (0.06, -0.06, 0.0),
        (0.0, -0.06, 90.0),
        (0.12, 0.06, 0.0),
        (0.18, 0.0, 90.0),
    ]
    for j in range(keys):
        a0 = 2 * math.pi * j / keys
        for ds, dz, ang in unit:
            a = a0 + ds / axes[:2].mean() * 1.2
            direction = (math.cos(a), math.sin(a), dz - 0.35)
            cuts.append(on_stone(stroke.rotate((0, 0, ang)), direction))
    boss = parts.chamfered_disc(0.05, 0.1, 0.0, 0.02, parts.SMALL_SEGMENTS).translate((0, 0, -0.05))
    adds += [
        on_stone(boss, (math.cos(a), math.sin(a), -0.7))
        for a in np.linspace(0, 2 * math.pi, p.integer("bosses", 20, 30), endpoint=False)
    ]
    return union([subtract(stone, cuts), *adds])


@family
def medallion(p: Params) -> Manifold:
    """Medal: raised chamfered rim, reeded edge, beaded border, guilloché field of radial grooves,
    a bevelled star emblem and an engraved glyph ring; concentric grooves on the reverse."""
    rad = 10.0
    thick = p.uniform("thickness", 1.2, 1.8)
    reeds = p.integer("reeds", 160, 240)
    beads = p.integer("beads", 80, 110)
    rays = p.integer("guilloche_rays", 120, 180)
    points = p.integer("star_points", 5, 9)
    glyphs = p.integer("glyphs", 18, 28)
    t, rim = thick, 1.2
    body = lathe(
        [
            (0, 0),
            (rad - 0.2, 0),
            (rad, 0.2),
            (rad, t - 0.2),
            (rad - 0.2, t),
            (rad - rim, t),
            (rad - rim - 0.2, t - 0.3),
            (0, t - 0.3),
        ],
        4 * csg.SEGMENTS,
    )
    field = t - 0.3
    cuts = [box(0.22, 0.3, t + 1).translate((rad, 0, t / 2)).rotate((0, 0, 360 * i / reeds)) for i in range(reeds)]
    ray = box(0.5 * rad, 0.08, 0.2).translate((0.45 * rad, 0, field))
    cuts += around(ray, rays, 180 / rays)
    cuts += [
        lathe([(r0, -0.1), (r0 + 0.12, 0.15), (r0 - 0.12, 0.15)], 4 * csg.SEGMENTS)
        for r0 in np.linspace(2.0, rad - 2.0, p.integer("reverse_rings", 8, 14))
    ]
    strokes = [box(0.12, 0.6, 0.2), box(0.6, 0.12, 0.2), box(0.12, 0.85, 0.2).rotate((0, 0, 35))]
    glyph_r = rad - rim - 0.9
    for i in range(glyphs):
        picks = p.rng.choice(len(strokes), int(p.rng.integers(2, 4)), replace=False)
        offsets = p.rng.uniform(-0.2, 0.2, (len(picks), 2))
        glyph = union([strokes[k].translate((dx, dy, 0)) for k, (dx, dy) in zip(picks, offsets)])
        cuts.append(glyph.rotate((0, 0, -90)).translate((glyph_r, 0, field)).rotate((0, 0, 360 * i / glyphs)))
    medal = subtract(body, cuts)
    star = csg.radial_polygon(lambda a: np.where(np.arange(len(a)) % 2 == 0, 3.0, 1.3), 2 * points)
    emblem = csg.prism(star, 0.6, scale_top=0.6).translate((0, 0, field - 0.1))
    bead = Manifold.sphere(0.22, parts.SMALL_SEGMENTS).translate(
        (rad - rim - 0.35, 0, field - 0.05)
    )  # centred below the field: no equator on the plane
    boss = parts.chamfered_disc(0.8, 0.9, 0.0, 0.2).translate((0, 0, field - 0.13))
    return union([medal, emblem, boss, *around(bead, beads)])


@family
def turbine_rotor(p: Params) -> Manifold:
    """Stacked turbine stages on a threaded shaft: stepped discs with balance holes and bolt
    circles, rings of chamfered blades at a stagger angle, optional shrouds."""
    stages = p.integer("stages", 2, 3)
    blades = p.integer("blades", 48, 72)
    stagger = p.uniform("stagger_deg", 25.0, 45.0)
    shroud = p.choice("shroud", [False, True])
    r_disc, span, gap = 4.0, 2.0, 2.2
    solids = []
    for s in range(stages):
        z = s * gap
        disc = lathe(
            [
                (0, 0),
                (1.4, 0),
                (1.4, -0.3),
                (2.2, -0.3),
                (2.4, 0.2),
                (r_disc - 0.3, 0.25),
                (r_disc, 0.35),
                (r_disc, 0.85),
                (r_disc - 0.3, 0.95),
                (2.4, 1.0),
                (2.2, 1.5),
                (1.4, 1.5),
                (1.4, 1.2),
                (0, 1.2),
            ],
            2 * csg.SEGMENTS,
        )
        holes = around(cylinder(3, 0.18).translate((1.85, 0, -1)), 8, 22.5)
        nuts = around(parts.hex_nut(0.4, 0.25).translate((2.9, 0, 0.95)), 12)
        blade = (
            chamfered_box(span + 0.4, 0.9, 0.14, 0.05)
            .rotate((stagger * (1 if s % 2 else -1), 0, 0))
            .translate((r_disc + span / 2 - 0.2, 0, 0.6))
        )
        ring = around(blade, blades + 6 * s, 0.37 * s)
        stage = [subtract(disc, holes), *nuts, *ring]
        if shroud:
            stage.append(
                lathe(
                    [
                        (r_disc + span - 0.25, 0.15),
                        (r_disc + span + 0.15, 0.15),
                        (r_disc + span + 0.25, 0.35),
                        (r_disc + span + 0.25, 0.85),
                        (r_disc + span + 0.15, 1.05),
                        (r_disc + span - 0.25, 1.05),
                    ],
                    4 * csg.SEGMENTS,
                )
            )
        solids.append(union(stage).translate((0, 0, z)))
    shaft = parts.thread(0.9, 0.3, stages * gap + 1.5).translate((0, 0, -0.8))
    nut = parts.hex_nut(2.2, 0.8).translate((0, 0, stages * gap - 0.7))
    return union([*solids, shaft, nut])


@family
def pipe_manifold(p: Params) -> Manifold:
    """Pipe header with branches: bolted flange joints (hex heads, nuts, stud ends), blind
    covers, and valves with spoked handwheels."""
    branches = p.integer("branches", 2, 4)
    bolts = p.integer("bolts_per_flange", 8, 12)
    r = p.uniform("pipe_radius", 0.6, 0.9)
    spacing = 4.2 * r
    length = (branches + 1) * spacing
    rf = 1.9 * r
    flange = parts.chamfered_disc(rf, 0.35, 0.06, 0.06)
    head = parts.hex_nut(0.32, 0.2, chamfer_bottom=False)
    nut = parts.hex_nut(0.32, 0.25)
    stud = parts.chamfered_disc(0.09, 0.45, 0.03, 0.03, parts.SMALL_SEGMENTS)
    bolt_r = (rf + r) / 2 + 0.05
    joint = union(
        [
            flange,
            flange.translate((0, 0, 0.37)),
            *around(
                union(
                    [head.translate((0, 0, 0.7)), nut.translate((0, 0, -0.24)), stud.translate((0, 0, -0.4))]
                ).translate((bolt_r, 0, 0)),
                bolts,
            ),
        ]
    )
    rim = lathe(
        [
            (0.9 * r + 0.12 * r * math.cos(a), 0.12 * r * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)
        ]
    )
    spoke = cylinder(0.9 * r, 0.05 * r, segments=parts.SMALL_SEGMENTS).rotate((0, 90, 0))
    hub = parts.chamfered_disc(0.2 * r, 0.3 * r, 0.05 * r, 0.05 * r).translate((0, 0, -0.15 * r))
    wheel = union([rim, *around(spoke, 5), hub])
    header = cylinder(length, r).rotate((0, 90, 0)).translate((-length / 2, 0, 0))
    solids = [header]
    for side in (-1, 1):
        solids.append(joint.rotate((0, 90 * side, 0)).translate((side * (length / 2 - 0.2), 0, 0)))
    for i in range(branches):
        x = (i - (branches - 1) / 2) * spacing
        height = 3.0 * r + 0.5 * (i % 2)
        pipe = cylinder(height + 0.4, 0.7 * r).translate((x, 0, 0))
        valve = chamfered_box(1.5 * r, 1.5 * r, 1.2 * r, 0.15 * r).translate((x, 0, 0.55 * height))
        stem = cylinder(1.2 * r, 0.1 * r).translate((x, 0, 0.55 * height))
        solids += [pipe, valve, stem, wheel.translate((x, 0, 0.55 * height + 1.3 * r)), joint.translate((x, 0, height))]
    return union(solids)
