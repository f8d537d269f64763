"""Cameras around a normalized asset (the `Camera` of DESIGN.md, `hi3dgen.data.cameras`): where the
render stage and the toy shapes look from."""

from __future__ import annotations

import math

import numpy as np

from hi3dgen.data.cameras import Camera

# The asset contract puts every asset inside [-0.5, 0.5]^3, so its bounding sphere has this radius.
UNIT_CUBE_RADIUS = math.sqrt(3.0) / 2.0


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Square pixels, principal point at the image centre; `fov_deg` spans the shorter side."""
    f = 0.5 * min(width, height) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def fit_radius(fov_deg: float, margin: float = 1.05) -> float:
    """Camera distance at which the unit cube's bounding sphere fits inside the view cone."""
    return margin * UNIT_CUBE_RADIUS / math.sin(math.radians(fov_deg) / 2)


def look_at(eye: np.ndarray, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL camera-to-world matrix of a camera at `eye` looking at `target`."""
    eye = np.asarray(eye, float)
    z = eye - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(up, float), z)
    x /= np.linalg.norm(x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, np.cross(z, x), z, eye
    return c2w


def orbit_cameras(
    count: int,
    resolution: int,
    fov_deg: float = 40.0,
    elevation_deg: tuple[float, float] = (-20.0, 50.0),
    seed: int = 0,
) -> list[Camera]:
    """`count` cameras on a sphere around the origin, azimuths evenly spaced from a random start,
    elevations stratified over `elevation_deg` in random order, all looking at the origin."""
    lo, hi = elevation_deg
    if not -90.0 < lo <= hi < 90.0:
        raise ValueError(f"elevation range must lie inside (-90, 90) degrees, got {elevation_deg}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(count) / count
    strata = (rng.permutation(count) + rng.uniform(size=count)) / count
    elevation = np.radians(lo + (hi - lo) * strata)
    radius = fit_radius(fov_deg)
    K = intrinsics(fov_deg, resolution, resolution)
    cams = []
    for az, el in zip(azimuth, elevation):
        eye = radius * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        cams.append(Camera(K.copy(), look_at(eye), resolution, resolution))
    return cams
