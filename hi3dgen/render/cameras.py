"""Cameras around a normalized asset (DESIGN.md "Camera"): OpenGL convention, `c2w` camera-to-world
(the camera looks down -Z, +Y up, +X right), `K` pinhole intrinsics in pixels with pixel centres at
+0.5, so pixel (row i, column j) sees the camera-space direction ((j + 0.5 - cx) / fx,
-(i + 0.5 - cy) / fy, -1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

# The asset contract puts every asset inside [-0.5, 0.5]^3, so its bounding sphere has this radius.
UNIT_CUBE_RADIUS = math.sqrt(3.0) / 2.0


@dataclasses.dataclass(frozen=True)
class Camera:
    K: np.ndarray  # (3, 3) float64
    c2w: np.ndarray  # (4, 4) float64
    width: int
    height: int

    @property
    def position(self) -> np.ndarray:
        return self.c2w[:3, 3]

    @property
    def rotation(self) -> np.ndarray:
        """Columns are the camera's +X, +Y, +Z axes in world space."""
        return self.c2w[:3, :3]

    def to_json(self) -> dict:
        return {
            "K": self.K.tolist(),
            "c2w": self.c2w.tolist(),
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, obj: dict) -> Camera:
        return cls(np.asarray(obj["K"], float), np.asarray(obj["c2w"], float),
                   int(obj["width"]), int(obj["height"]))

    def pixel_directions(self) -> np.ndarray:
        """(H, W, 3) camera-space ray directions through the pixel centres, with z = -1."""
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        j, i = np.meshgrid(np.arange(self.width) + 0.5, np.arange(self.height) + 0.5)
        return np.stack([(j - cx) / fx, -(i - cy) / fy, -np.ones_like(i)], axis=-1)

    def world_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Origins and unit world directions (H*W, 3) of the rays through the pixel centres, row
        by row. A hit at ray length t lies at depth t * (direction . forward), forward = -Z."""
        d = self.pixel_directions().reshape(-1, 3) @ self.rotation.T
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(self.position, d.shape), d

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixel coordinates (u right, v down)."""
        cam = (np.asarray(points, float) - self.position) @ self.rotation
        depth = -cam[:, 2]
        u = self.K[0, 0] * cam[:, 0] / depth + self.K[0, 2]
        v = -self.K[1, 1] * cam[:, 1] / depth + self.K[1, 2]
        return np.stack([u, v], axis=-1)


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


def asset_seed(seed: int, asset_id: str) -> int:
    """A per-asset seed that is stable across processes and Python versions (unlike hash())."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{asset_id}".encode()).digest()[:8], "little")


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
