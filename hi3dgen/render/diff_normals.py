"""Differentiable normal rendering of a mesh whose vertices are torch tensors (NoRLD's online
normal loss): the same flat, winding-outward, camera-space face normals as the dataset renderers
(`hi3dgen.render.backend`), with gradients to the vertex positions.

Visibility (which face each pixel centre sees) is piecewise constant in the vertices, so it is
computed without gradients: nvdiffrast's rasterizer on CUDA, Embree ray casting on CPU. Each
pixel's normal is then its face's normal computed in torch from the three vertices and rotated
into the camera, so both backends give the same values and the same gradients.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from hi3dgen.data.cameras import Camera, scale_intrinsics

BACKENDS = ("auto", "embree", "nvdiffrast")


@dataclasses.dataclass
class NormalMaps:
    normal: torch.Tensor  # (N, H, W, 3) camera-space unit normals, 0 on background
    mask: torch.Tensor  # (N, H, W) bool
    backend: str


def resolve_backend(name: str, device: torch.device) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown differentiable render backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        return "nvdiffrast" if device.type == "cuda" else "embree"
    if name == "nvdiffrast" and device.type != "cuda":
        raise ValueError("backend 'nvdiffrast' needs the mesh on a CUDA device; use 'embree' on CPU")
    return name


def as_camera(cam) -> Camera:
    return cam if isinstance(cam, Camera) else Camera.from_json(cam)


def resize_camera(cam: Camera, resolution: int) -> Camera:
    """The same view at `resolution` pixels on its longer side (K scaled, pixel centres kept at +0.5)."""
    s = resolution / max(cam.width, cam.height)
    return Camera(scale_intrinsics(cam.K, s), cam.c2w, round(cam.width * s), round(cam.height * s))


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals (..., F, 3) of faces (..., F, 3) into vertices (..., V, 3); 0 for degenerate faces."""
    idx = faces.flatten(-2)
    corners = torch.gather(vertices, -2, idx[..., None].expand(*idx.shape, 3)).unflatten(-2, (-1, 3))
    v0, v1, v2 = corners.unbind(-2)
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=1e-12)


def clip_matrices(K: torch.Tensor, c2w: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """World-to-clip matrices (..., 4, 4) of cameras K (..., 3, 3), rigid c2w (..., 4, 4): the
    torch form of `hi3dgen.render.nvdiff.projection` times the inverse view (no host copy)."""
    from hi3dgen.render.nvdiff import FAR, NEAR

    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    proj = torch.zeros(*K.shape[:-2], 4, 4, dtype=K.dtype, device=K.device)
    proj[..., 0, 0] = 2 * fx / width
    proj[..., 0, 2] = 1.0 - 2 * cx / width
    proj[..., 1, 1] = -2 * fy / height
    proj[..., 1, 2] = 1.0 - 2 * cy / height
    proj[..., 2, 2] = -(FAR + NEAR) / (FAR - NEAR)
    proj[..., 2, 3] = -2 * FAR * NEAR / (FAR - NEAR)
    proj[..., 3, 2] = -1.0
    rot_t = c2w[..., :3, :3].transpose(-1, -2)
    w2c = torch.zeros_like(c2w)
    w2c[..., :3, :3] = rot_t
    w2c[..., :3, 3] = -(rot_t @ c2w[..., :3, 3:])[..., 0]
    w2c[..., 3, 3] = 1.0
    return proj @ w2c


def _embree_faces(vertices: np.ndarray, faces: np.ndarray, cameras: list[Camera]) -> np.ndarray:
    """(N, H, W) index of the face hit through each pixel centre, -1 on background."""
    from embreex import rtcore_scene
    from embreex.mesh_construction import TriangleMesh

    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(scene=scene, vertices=vertices.astype(np.float32), indices=faces.astype(np.int32))
    out = []
    for cam in cameras:
        dirs = cam.pixel_directions().reshape(-1, 3) @ cam.rotation.T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origins = np.broadcast_to(cam.position, dirs.shape).astype(np.float32)
        out.append(scene.run(origins, dirs.astype(np.float32)).reshape(cam.height, cam.width))
    return np.stack(out)


def _nvdiffrast_faces(vertices: torch.Tensor, faces: torch.Tensor, clip: torch.Tensor, size) -> torch.Tensor:
    """The same through nvdiffrast's CUDA rasterizer, every sample and view in one call (range
    mode: each (sample, view) rasterizes its own copy of its sample's faces over vertices in that
    view's clip space). The ranges are constants of the shapes, built on the host: no sync."""
    from hi3dgen.render.backend import get_backend

    raster = get_backend("nvdiffrast")
    b, n = clip.shape[:2]
    v, f = vertices.shape[1], faces.shape[1]
    homogeneous = torch.cat([vertices.detach().float(), torch.ones_like(vertices[..., :1])], dim=-1)
    pos = torch.einsum("bnij,bvj->bnvi", clip.float(), homogeneous).reshape(b * n * v, 4).contiguous()
    offset = torch.arange(b * n, device=faces.device).view(b, n, 1, 1) * v
    tri = (faces[:, None] + offset).reshape(b * n * f, 3).int().contiguous()
    ranges = torch.stack([torch.arange(b * n, dtype=torch.int32) * f, torch.full((b * n,), f, dtype=torch.int32)], 1)
    rast, _ = raster.dr.rasterize(raster.ctx, pos, tri, resolution=size, ranges=ranges)
    # triangle ids are global (+1) in range mode: back to the sample's own face index
    local = rast[..., 3].long() - 1 - torch.arange(b * n, device=faces.device).view(-1, 1, 1) * f
    return torch.where(rast[..., 3] > 0, local, -torch.ones_like(local)).view(b, n, *size)


def render_normal_batch(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    size: tuple[int, int],
    backend: str = "auto",
) -> NormalMaps:
    """Camera-space normal maps (B, N, H, W, 3) of B meshes, vertices (B, V, 3) and faces (B, F, 3)
    (degenerate faces draw nothing), each at its N cameras K (B, N, 3, 3), c2w (B, N, 4, 4) of
    size (H, W); differentiable in `vertices`. nvdiffrast: one rasterization for all; embree: one
    scene per mesh. Both share the torch normal gathering, so they agree in values and gradients."""
    backend = resolve_backend(backend, vertices.device)
    if backend == "nvdiffrast":
        tri = _nvdiffrast_faces(vertices, faces, clip_matrices(K.float(), c2w.float(), *size), size)
    else:
        v_np, f_np = vertices.detach().cpu().double().numpy(), faces.cpu().numpy()
        k_np, c_np = K.cpu().double().numpy(), c2w.cpu().double().numpy()
        tri = np.stack(
            [
                _embree_faces(v_np[i], f_np[i], [Camera(k, c, size[1], size[0]) for k, c in zip(k_np[i], c_np[i])])
                for i in range(len(v_np))
            ]
        )
        tri = torch.from_numpy(tri).to(vertices.device).long()
    b, n = tri.shape[:2]
    mask = tri >= 0
    fn = face_normals(vertices, faces)  # (B, F, 3) world
    idx = tri.clamp(min=0).reshape(b, -1, 1).expand(-1, -1, 3)
    world = torch.gather(fn, 1, idx).reshape(b, n, -1, 3)
    rotation = c2w[..., :3, :3].to(vertices.dtype)
    normal = torch.einsum("bnpj,bnji->bnpi", world, rotation)  # n_cam = R^T n_world
    return NormalMaps(normal.reshape(*tri.shape, 3) * mask[..., None], mask, backend)


def render_normals(vertices: torch.Tensor, faces: torch.Tensor, cameras: list, backend: str = "auto") -> NormalMaps:
    """Camera-space normal maps (N, H, W, 3) of the mesh at each camera (Camera or its JSON dict;
    all of one size), differentiable in `vertices` (V, 3)."""
    cameras = [as_camera(c) for c in cameras]
    if len({(c.height, c.width) for c in cameras}) != 1:
        raise ValueError("render_normals draws all cameras at one resolution; resize them first")
    resolve_backend(backend, vertices.device)
    K = torch.as_tensor(np.stack([c.K for c in cameras]), device=vertices.device)[None]
    c2w = torch.as_tensor(np.stack([c.c2w for c in cameras]), device=vertices.device)[None]
    size = (cameras[0].height, cameras[0].width)
    maps = render_normal_batch(vertices[None], faces[None], K, c2w, size, backend)
    return NormalMaps(maps.normal[0], maps.mask[0], maps.backend)


def normal_error(pred: NormalMaps, gt_normal: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """Masked normal error of maps (..., N, H, W), one per leading index (a scalar for (N, H, W)):
    mean squared difference of the normal vectors over the pixels either map covers (background
    counts as the zero vector, so a missed or extra pixel costs 1). Only pixels both cover carry
    gradients: coverage itself is not differentiable here."""
    union = (pred.mask | gt_mask.bool()).float()
    sq = (pred.normal - gt_normal * gt_mask[..., None]).pow(2).sum(-1)
    return (sq * union).sum((-3, -2, -1)) / union.sum((-3, -2, -1)).clamp(min=1.0)
