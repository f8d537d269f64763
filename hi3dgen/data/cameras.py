"""The camera of the data contract (DESIGN.md "Camera"): OpenGL convention, `c2w` camera-to-world
(the camera looks down -Z, +Y up, +X right), `K` pinhole intrinsics in pixels with pixel centres at
+0.5, so pixel (row i, column j) sees the camera-space direction ((j + 0.5 - cx) / fx,
-(i + 0.5 - cy) / fy, -1). Also the cameras of a decoded shape sample or of a batch of them.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def scale_intrinsics(K: np.ndarray, s: float) -> np.ndarray:
    """Intrinsics (..., 3, 3) of the same view with images `s` times as large (pixel centres at +0.5)."""
    K = np.array(K, copy=True)
    K[..., :2, :] *= s
    return K


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
        return cls(np.asarray(obj["K"], float), np.asarray(obj["c2w"], float), int(obj["width"]), int(obj["height"]))

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


def cameras_of(sample: dict) -> list[Camera]:
    """A decoded sample's (or batch row's) cameras: K (V, 3, 3) and c2w (V, 4, 4)."""
    cams = sample["cameras"] if "cameras" in sample else sample
    K, c2w = np.asarray(cams["K"], np.float64), np.asarray(cams["c2w"], np.float64)
    h, w = int(cams["height"]), int(cams["width"])
    return [Camera(K[i], c2w[i], w, h) for i in range(len(K))]


def batch_cameras(batch: dict, i: int) -> list[Camera]:
    """The cameras of row i of a batch made by `prepare_shape`."""
    h, w = batch["masks"].shape[-2:]
    return cameras_of({"K": batch["K"][i].cpu().numpy(), "c2w": batch["c2w"][i].cpu().numpy(), "height": h, "width": w})
