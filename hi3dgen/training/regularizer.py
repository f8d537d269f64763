"""NoRLD's normal regularizer for a batch of latents, all on the device without a host sync:
one decoder pass for the B latents, one batched SDF query of every sample's full grid (no
gradients), marching cubes into fixed face/vertex budgets (`hi3dgen.geometry.marching_cubes`),
one batched SDF query with gradients at the kept vertices' edge ends (each vertex placed at the
zero crossing of its edge, so it is differentiable in z), then one rasterization of all
samples x views and the masked normal error per sample.

(`hi3dgen.geometry.mesh_extract.extract`, scikit-image marching cubes on the host, stays for the
final meshes of evaluation and generation.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import torch
from torch.profiler import record_function

from hi3dgen.config import flag
from hi3dgen.geometry.marching_cubes import edge_ends, topology
from hi3dgen.geometry.mesh_extract import ExtractConfig, edge_vertices, grid_points
from hi3dgen.models.shape_vae import ShapeVAE
from hi3dgen.render.diff_normals import normal_error, render_normal_batch


@dataclasses.dataclass(frozen=True)
class RegularizerConfig:
    weight: Annotated[float, flag("--reg-weight")] = 1.0  # λ; 0 turns the regularizer off
    share: Annotated[float, flag("--reg-share")] = 1.0  # share of training steps it runs on (evenly spread)
    t_min: Annotated[float, flag("--reg-t-min")] = 0.0  # only samples with t in [t_min, t_max] are regularized
    t_max: Annotated[float, flag("--reg-t-max")] = 1.0  # (x̂0 is meaningless at pure noise)
    max_samples: Annotated[int, flag("--reg-samples")] = 2  # rows regularized per step, together
    views: Annotated[int, flag("--reg-views")] = 2  # ground-truth views rendered per sample
    render_size: Annotated[int, flag("--render-size")] = 64
    # the full grid (resolution, bound, chunk: points of every sample per decoder call); no coarse
    # pass (a coarse grid's band is most of the grid for an SDF trained clamped to +-0.1)
    extract: ExtractConfig = dataclasses.field(default_factory=lambda: ExtractConfig(resolution=32))
    max_faces: int = 16384  # triangles per mesh (more are dropped and counted: train/reg_overflow)
    backend: str = "auto"  # nvdiffrast on CUDA, embree on CPU

    def __post_init__(self):
        if self.extract.coarse:
            raise ValueError("the regularizer evaluates the full grid: reg.extract.coarse must be 0")

    def active(self, step: int) -> bool:
        return self.weight > 0 and math.ceil(step * self.share) < math.ceil((step + 1) * self.share)


@dataclasses.dataclass
class RegularizerResult:
    errors: torch.Tensor  # (B,) masked normal error per sample (1 for a sample without a surface)
    faces: torch.Tensor  # (B,) triangles of each sample's full surface
    overflow: torch.Tensor  # (B,) bool: the surface exceeded the face or vertex budget


def vertex_budget(max_faces: int) -> int:
    """Vertex slots for `max_faces` triangles: a closed mesh has V = F / 2 + 2; the margin covers
    surfaces cut open by the grid's boundary."""
    return max_faces // 2 + max_faces // 16 + 8


def sdf_grids(vae: ShapeVAE, tokens: torch.Tensor, extract: ExtractConfig) -> torch.Tensor:
    """SDF values (B, R, R, R) of decoder tokens (B, L, width) on the full grid, `chunk` points of
    every sample per decoder call, without gradients."""
    r = extract.resolution
    pts = grid_points(r, extract.bound, tokens.device).reshape(1, -1, 3).expand(len(tokens), -1, -1)
    with torch.no_grad():
        values = vae.query_chunked(tokens.detach(), pts.to(tokens.dtype), extract.chunk)
    return values.float().reshape(len(tokens), r, r, r)


def normal_regularizer(
    vae: ShapeVAE,
    z: torch.Tensor,
    normals: torch.Tensor,
    masks: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    cfg: RegularizerConfig,
) -> RegularizerResult:
    """Normal errors of the meshes of latents z (B, L, C) against their ground-truth views:
    normals (B, N, 3, H, W), masks (B, N, H, W), cameras K (B, N, 3, 3), c2w (B, N, 4, 4)."""
    resolution, bound = cfg.extract.resolution, cfg.extract.bound
    with record_function("reg.decode"):
        tokens = vae.decode(z)
    with record_function("reg.sdf_grid"):
        grids = sdf_grids(vae, tokens, cfg.extract)
    with record_function("reg.marching_cubes"):
        top = topology(grids, cfg.max_faces, vertex_budget(cfg.max_faces))
        if grids.device.type == "cpu":  # fixed sizes keep a GPU free of syncs; on the CPU they only cost
            top = top.trimmed()
    with record_function("reg.vertices"):
        pa, pb = edge_ends(top.edges, resolution, bound)
        f = vae.query(tokens, torch.cat([pa, pb], dim=1).to(tokens.dtype)).float()
        vertices = edge_vertices(pa, pb, *f.chunk(2, dim=1))
    with torch.autocast(z.device.type, enabled=False), record_function("reg.render"):
        maps = render_normal_batch(vertices, top.faces, K, c2w, tuple(masks.shape[-2:]), cfg.backend)
        errors = normal_error(maps, normals.permute(0, 1, 3, 4, 2).float(), masks)
    return RegularizerResult(errors, top.face_count, top.overflow)
