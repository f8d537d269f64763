"""GPU renderer: nvdiffrast's CUDA rasterizer (PyPI `diffrp-nvdiffrast`), all views of an asset in
one batched rasterize call. Pixels are sampled at their centres, like the embree backend's rays."""

from __future__ import annotations

import sys

import numpy as np
import trimesh

from hi3dgen.data.cameras import Camera
from hi3dgen.render.backend import View, base_colour, lambert_srgb, version

NEAR, FAR = 0.05, 100.0


def _load_plugin() -> None:
    """Build or load nvdiffrast's CUDA plugin. With torch >= 2.11, nvdiffrast's own
    `importlib.import_module` does not find the module that torch's cpp_extension just loaded;
    registering it in sys.modules while nvdiffrast loads it fixes that (ENVIRONMENT.md)."""
    import nvdiffrast.torch.ops as ops
    import torch.utils.cpp_extension as ext

    if ops._cached_plugin.get(False) is not None:
        return
    originals = ext.load, ext._import_module_from_library

    def registering(fn):
        def wrapped(*args, **kwargs):
            module = fn(*args, **kwargs)
            sys.modules[module.__name__] = module
            return module

        return wrapped

    ext.load, ext._import_module_from_library = map(registering, originals)
    try:
        ops._get_plugin()
    finally:
        ext.load, ext._import_module_from_library = originals


def projection(camera: Camera) -> np.ndarray:
    """OpenGL clip matrix of this camera's K, with image row 0 at the top (nvdiffrast puts NDC
    y = -1 in row 0) and pixel centres at +0.5."""
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    w, h = camera.width, camera.height
    return np.array(
        [
            [2 * fx / w, 0.0, 1.0 - 2 * cx / w, 0.0],
            [0.0, -2 * fy / h, 1.0 - 2 * cy / h, 0.0],
            [0.0, 0.0, -(FAR + NEAR) / (FAR - NEAR), -2 * FAR * NEAR / (FAR - NEAR)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


class NvdiffrastBackend:
    name = "nvdiffrast"

    def __init__(self, device: str = "cuda"):
        try:
            import torch
        except ImportError as exc:
            raise RuntimeError(
                f"render backend 'nvdiffrast' requires CUDA through PyTorch, and torch is not installed: {exc}"
            ) from exc
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"render backend 'nvdiffrast' requires CUDA, and torch {torch.__version__} sees no "
                "CUDA device on this machine: use --backend embree (CPU) or run on a GPU machine"
            )
        import nvdiffrast.torch as dr

        _load_plugin()
        self.torch, self.dr = torch, dr
        self.device = torch.device(device)
        self.ctx = dr.RasterizeCudaContext(device=self.device)
        self.version = version(self.name)

    def rasterize(self, vertices, faces, cameras: list[Camera]):
        """nvdiffrast's raster output (V, H, W, 4) of all cameras in one call, and the vertices in
        each camera's space (V, N, 4); `vertices` (N, 3) float and `faces` (F, 3) int32 tensors
        on this backend's device."""
        torch = self.torch
        size = {(c.height, c.width) for c in cameras}
        if len(size) != 1:
            raise ValueError(f"nvdiffrast backend renders one resolution per call, got {size}")
        w2c = self._tensor(np.stack([np.linalg.inv(c.c2w) for c in cameras]))
        proj = self._tensor(np.stack([projection(c) for c in cameras]))
        homogeneous = torch.cat([vertices.float(), torch.ones_like(vertices[:, :1])], dim=1)
        in_camera = torch.einsum("vij,nj->vni", w2c, homogeneous)
        clip = torch.einsum("vij,vnj->vni", proj, in_camera).contiguous()
        rast, _ = self.dr.rasterize(self.ctx, clip, faces, resolution=size.pop())
        return rast, in_camera

    def _tensor(self, a, dtype=np.float32):
        return self.torch.from_numpy(np.array(a, dtype=dtype)).to(self.device)

    def render_tensors(self, mesh: trimesh.Trimesh, cameras: list[Camera], seed: int = 0, rgb: bool = True) -> dict:
        """All views on the GPU: normal (V, H, W, 3), mask (V, H, W), depth (V, H, W) and
        rgb (V, H, W, 3) uint8 or None."""
        torch = self.torch
        faces = self._tensor(mesh.faces, np.int32)
        rast, in_camera = self.rasterize(self._tensor(mesh.vertices), faces, cameras)
        triangle = rast[..., 3].long()  # face index + 1, 0 on background
        mask = triangle > 0
        # camera-space face normals, row 0 for the background
        rotation = self._tensor(np.stack([c.rotation for c in cameras]))
        normals = torch.einsum("fj,vji->vfi", self._tensor(mesh.face_normals), rotation)
        normals = torch.cat([torch.zeros_like(normals[:, :1]), normals], dim=1)
        flat = triangle.reshape(len(cameras), -1, 1).expand(-1, -1, 3)
        normal = torch.gather(normals, 1, flat).reshape(*triangle.shape, 3)
        depth, _ = self.dr.interpolate(-in_camera[..., 2:3].contiguous(), rast, faces)
        depth = depth[..., 0] * mask
        colour = None
        if rgb:
            shaded = lambert_srgb(normal, self._tensor(base_colour(seed)))
            colour = ((shaded * 255).round() * mask[..., None]).to(torch.uint8)
        return {"normal": normal, "mask": mask, "depth": depth, "rgb": colour}

    def render(self, mesh: trimesh.Trimesh, cameras: list[Camera], seed: int = 0, rgb: bool = True) -> list[View]:
        """Host arrays in pinned memory from torch's caching host allocator: a freed asset's
        buffers serve the next one, where fresh pageable memory would page-fault on every copy
        (126 MB for 24 views at 512², slower than rasterizing them)."""
        torch = self.torch
        out = {}
        for k, t in self.render_tensors(mesh, cameras, seed, rgb).items():
            if t is not None:
                out[k] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                out[k].copy_(t, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        out = {k: out[k].numpy() if k in out else None for k in ("normal", "mask", "depth", "rgb")}
        return [
            View(out["normal"][i], out["mask"][i], out["depth"][i], None if out["rgb"] is None else out["rgb"][i])
            for i in range(len(cameras))
        ]
