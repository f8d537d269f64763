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
    v0, v1, v2 = vertices[faces].unbind(1)
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=1e-12)


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


def _nvdiffrast_faces(vertices: torch.Tensor, faces: torch.Tensor, cameras: list[Camera]) -> torch.Tensor:
    """The same through nvdiffrast's CUDA rasterizer, all views in one call."""
    from hi3dgen.render.backend import get_backend
    from hi3dgen.render.nvdiff import projection

    raster = get_backend("nvdiffrast")
    dev = vertices.device
    w2c = torch.as_tensor(np.stack([np.linalg.inv(c.c2w) for c in cameras]), dtype=torch.float32, device=dev)
    proj = torch.as_tensor(np.stack([projection(c) for c in cameras]), dtype=torch.float32, device=dev)
    homogeneous = torch.cat([vertices.detach().float(), torch.ones_like(vertices[:, :1])], dim=1)
    clip = torch.einsum("vij,vjk,nk->vni", proj, w2c, homogeneous).contiguous()
    rast, _ = raster.dr.rasterize(
        raster.ctx, clip, faces.int().contiguous(), resolution=(cameras[0].height, cameras[0].width)
    )
    return rast[..., 3].long() - 1


def render_normals(vertices: torch.Tensor, faces: torch.Tensor, cameras: list, backend: str = "auto") -> NormalMaps:
    """Camera-space normal maps (N, H, W, 3) of the mesh at each camera (Camera or its JSON dict;
    all of one size), differentiable in `vertices` (V, 3)."""
    cameras = [as_camera(c) for c in cameras]
    if len({(c.height, c.width) for c in cameras}) != 1:
        raise ValueError("render_normals draws all cameras at one resolution; resize them first")
    backend = resolve_backend(backend, vertices.device)
    if backend == "nvdiffrast":
        tri = _nvdiffrast_faces(vertices, faces, cameras)
    else:
        tri = torch.from_numpy(_embree_faces(vertices.detach().cpu().double().numpy(), faces.cpu().numpy(), cameras))
        tri = tri.to(vertices.device).long()
    rotation = torch.as_tensor(np.stack([c.rotation for c in cameras]), dtype=vertices.dtype, device=vertices.device)
    fn = face_normals(vertices, faces)
    in_camera = torch.einsum("fj,vji->vfi", fn, rotation)  # n_cam = R^T n_world
    mask = tri >= 0
    idx = tri.clamp(min=0).reshape(len(cameras), -1, 1).expand(-1, -1, 3)
    normal = torch.gather(in_camera, 1, idx).reshape(*tri.shape, 3) * mask[..., None]
    return NormalMaps(normal, mask, backend)


def normal_error(pred: NormalMaps, gt_normal: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """Masked normal error: mean squared difference of the normal vectors over the pixels either
    map covers (background counts as the zero vector, so a missed or extra pixel costs 1). Only
    pixels both cover carry gradients: coverage itself is not differentiable here."""
    union = (pred.mask | gt_mask.bool()).float()
    sq = (pred.normal - gt_normal * gt_mask[..., None]).pow(2).sum(-1)
    return (sq * union).sum() / union.sum().clamp(min=1.0)
