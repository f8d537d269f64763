"""One interface for every renderer, so stages and benchmarks pick a backend by name.

A backend renders all views of one mesh: `render(mesh, cameras, seed, rgb) -> list[View]`. All give
the same normals, masks and depths for the same mesh and cameras (tests hold them to it): normals are
the mesh's true face normals (flat shading, winding-outward, never flipped toward the camera) in the
OpenGL camera space of each view.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata

import numpy as np

# name -> (module, class, the distribution whose version stamps the renders)
BACKENDS = {
    "embree": ("hi3dgen.render.embree", "EmbreeBackend", "embreex"),
    "blender": ("hi3dgen.render.blender", "BlenderBackend", "bpy"),
    "nvdiffrast": ("hi3dgen.render.nvdiff", "NvdiffrastBackend", "diffrp-nvdiffrast"),
}


@dataclasses.dataclass
class View:
    normal: np.ndarray  # (H, W, 3) float32 camera-space unit normals, 0 on background
    mask: np.ndarray  # (H, W) bool, True where the surface is visible
    depth: np.ndarray  # (H, W) float32 distance along -Z, 0 on background
    rgb: np.ndarray | None = None  # (H, W, 3) uint8 sRGB, black background


def check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown render backend {name!r}; choose one of {sorted(BACKENDS)}")
    return name


def version(name: str) -> str:
    """`<distribution> <version>` of the library behind a backend, without importing it."""
    dist = BACKENDS[check_name(name)][2]
    try:
        return f"{dist} {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{dist} unknown"


@functools.lru_cache(maxsize=None)
def get_backend(name: str, **options):
    """The backend instance of this process (cached: a CUDA context or a Blender session is costly
    to set up, and Ray reuses worker processes across assets)."""
    module, cls, _ = BACKENDS[check_name(name)]
    return getattr(importlib.import_module(module), cls)(**options)


def base_colour(seed: int) -> np.ndarray:
    """A per-asset base colour (linear RGB) for backends without materials."""
    return np.random.default_rng(seed).uniform(0.25, 0.85, size=3)


_KEY = np.array([-0.4, 0.6, 0.7])
KEY_LIGHT = tuple(float(c) for c in _KEY / np.linalg.norm(_KEY))  # camera space, upper left, front


def lambert_srgb(normal, base):
    """Simple shaded sRGB colour in [0, 1] of camera-space normals (numpy or torch, with `base` of
    the same kind): a key light fixed to the camera plus ambient, so the image shows the shape rather
    than a lighting setup. Linear values stay >= 0.06, so only sRGB's power segment applies."""
    lx, ly, lz = KEY_LIGHT
    lit = normal[..., 0] * lx + normal[..., 1] * ly + normal[..., 2] * lz
    shade = 0.25 + 0.75 * lit.clip(0)
    return 1.055 * (shade[..., None] * base) ** (1 / 2.4) - 0.055


def agreement(a: View, b: View) -> dict:
    """How closely two renders of the same view agree: mean angle between normals over pixels both
    cover, the share of pixels whose masks agree, and the largest depth difference."""
    both = a.mask & b.mask
    na, nb = a.normal[both].astype(np.float64), b.normal[both].astype(np.float64)
    # atan2 of |a x b| and a . b: accurate at small angles and blind to rounded lengths
    angle = np.arctan2(np.linalg.norm(np.cross(na, nb), axis=-1), (na * nb).sum(-1))
    return {
        "mean_angle_deg": float(np.degrees(angle).mean()) if both.any() else float("nan"),
        "mask_agreement": float((a.mask == b.mask).mean()),
        "max_depth_error": float(np.abs(a.depth[both] - b.depth[both]).max()) if both.any() else 0.0,
    }
