"""Scoring and pictures of meshes against shape samples: the means of per-shape surface metrics,
and ground-truth beside rendered normal maps; `shape_set` picks the samples (toy or shards) and
`reconstruct_meshes` gives the shape VAE's own meshes of them."""

from __future__ import annotations

import numpy as np
import torch

from hi3dgen import tracking as project_tracking
from hi3dgen.data import shapes
from hi3dgen.data.cameras import cameras_of
from hi3dgen.geometry.metrics import mesh_metrics
from hi3dgen.models.shape_vae import vae_loss
from hi3dgen.render.diff_normals import render_normals
from hi3dgen.synthesis.toy import toy_shapes


def shape_set(cfg: shapes.ShapeDataConfig, split: str = "val") -> list[dict]:
    """The first `val_shapes` decoded samples of a split: toy shapes, or from the shard dir."""
    return toy_shapes(cfg, split)[: cfg.val_shapes] if cfg.shards == shapes.TOY else shapes.val_samples(cfg, split)


def reconstruct_meshes(vae, samples: list[dict], data: shapes.ShapeDataConfig, extract, device) -> list:
    """The shape VAE's reconstruction of each sample: its validation surface points (`prepare_shape`
    with fixed rows, `data`'s count and sharp share) encoded to the posterior mean (no sampling),
    decoded and extracted at `extract` (`Mesh` or None per sample)."""
    prepared = [shapes.prepare_shape(s, data, None) for s in samples]
    surface = torch.from_numpy(np.stack([p["surface"] for p in prepared])).to(device)
    return vae.extract_meshes(vae.encode(surface).mean, extract)


def sdf_scores(vae, samples: list[dict], data: shapes.ShapeDataConfig, device, sample: bool = False) -> np.ndarray:
    """Sums over `samples` of the shape VAE's SDF loss and sign accuracy (`vae_loss`) on their
    validation rows (`prepare_shape` with fixed rows), decoded from the posterior mean or, with
    `sample`, from a posterior sample (what training decodes)."""
    prepared = [shapes.prepare_shape(s, data, None) for s in samples]
    surface, sdf = (torch.from_numpy(np.stack([p[k] for p in prepared])).to(device) for k in ("surface", "sdf"))
    pred, post = vae(surface, sdf[..., :3], sample=sample)
    _, parts = vae_loss(vae.cfg, pred.float(), post, sdf)  # no surface points: its surface term is unused
    return len(samples) * np.array([float(parts["sdf_loss"]), float(parts["sign_acc"])])


def mesh_scores(meshes: list, samples: list[dict]) -> list[dict[str, float]]:
    """`mesh_metrics` of each predicted mesh (a `Mesh` or None) against its sample's ground-truth
    mesh (toy shapes have theirs; shape shards carry it for val shapes)."""
    rows = []
    for mesh, sample in zip(meshes, samples):
        if "mesh" not in sample:
            raise ValueError(
                f"shape sample {sample['key']} has no ground-truth mesh (shards written before val shapes "
                "carried one, or a train shape): rerun the shard stage, and score on val shapes"
            )
        rows.append(mesh_metrics(None if mesh is None else mesh.to_trimesh(), sample["mesh"]))
    return rows


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key means; `empty` is the share of shapes that produced no surface (their Chamfer is
    left out of the mean, their F-score and consistency count as 0)."""
    done = [r for r in rows if np.isfinite(r["chamfer"])]
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "chamfer"}
    out["chamfer"] = float(np.mean([r["chamfer"] for r in done])) if done else float("nan")
    out["empty"] = 1.0 - len(done) / len(rows)
    return out


def normals_grid(rendered: list, samples: list[dict], views: int) -> np.ndarray:
    """Rows of ground truth | rendered normal maps for each sample's first `views` views."""
    tiles = []
    for maps, sample in zip(rendered, samples):
        for v in range(views):
            gt = np.asarray(sample["normals"][v]).transpose(1, 2, 0)
            mask = np.asarray(sample["masks"][v], bool)
            tiles.append(project_tracking.normal_to_rgb(gt, mask))
            if maps is None:
                tiles.append(np.zeros_like(tiles[-1]))
            else:
                tiles.append(
                    project_tracking.normal_to_rgb(maps.normal[v].detach().cpu().numpy(), maps.mask[v].cpu().numpy())
                )
    return project_tracking.grid(tiles, cols=2 * views)


def render_meshes(meshes: list, samples: list[dict], views: int) -> list:
    """Differentiable-renderer normal maps of each mesh at its sample's first `views` cameras."""
    out = []
    for mesh, sample in zip(meshes, samples):
        cams = cameras_of(sample)[:views]
        out.append(None if mesh is None else render_normals(mesh.vertices.detach(), mesh.faces, cams))
    return out
