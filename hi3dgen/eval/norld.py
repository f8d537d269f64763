"""NoRLD's evaluation: generation from ground-truth normal maps of shape samples, scored by
Chamfer, F-score and normal consistency against the shape's surface, and NE/SNE of the generated
mesh's rendered normals against the shape's views; `evaluate_reconstruction` scores the shape VAE's own
reconstruction of the same samples alike (the bound generation is measured against)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from hi3dgen import io
from hi3dgen.data.cameras import cameras_of
from hi3dgen.data.shapes import ShapeDataConfig, resample_views
from hi3dgen.device import resolve_device
from hi3dgen.eval.normals import NormalMetrics, NormalMetricsConfig
from hi3dgen.eval.shapes import mean_metrics, mesh_scores, reconstruct_meshes, shape_set
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.inference.checkpoints import load_norld, load_vae
from hi3dgen.models.norld import NoRLD
from hi3dgen.models.shape_vae import ShapeVAE
from hi3dgen.render.diff_normals import render_normals


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    steps: int = 25
    guidance: float = 3.0
    seed: int = 0


def condition_of(samples: list[dict], size: int, device) -> torch.Tensor:
    """Each sample's first ground-truth normal map (B, 3, size, size): the condition at evaluation."""
    return torch.from_numpy(np.stack([resample_views(s, np.arange(1), size)["normals"][0] for s in samples])).to(device)


def generate_meshes(
    model: NoRLD, vae: ShapeVAE, samples: list[dict], sample: SampleConfig, extract: ExtractConfig, device
) -> list:
    g = torch.Generator(device).manual_seed(sample.seed)
    z = model.sample(condition_of(samples, model.cfg.image_size, device), sample.steps, sample.guidance, generator=g)
    with torch.no_grad():
        return vae.extract_meshes(z, extract)


def evaluate_generation(
    model: NoRLD,
    vae: ShapeVAE,
    samples: list[dict],
    sample: SampleConfig,
    extract: ExtractConfig,
    metrics: NormalMetricsConfig,
    device,
) -> dict[str, float]:
    """Generate from each sample's first ground-truth normal map; Chamfer, F-score and normal
    consistency against its ground-truth mesh, and NE/SNE of the mesh's rendered normals against all of its
    ground-truth views (an empty mesh renders as background: its views count as 90° off)."""
    meshes = generate_meshes(model, vae, samples, sample, extract, device)
    rows = mesh_scores(meshes, samples)
    normal_metrics = NormalMetrics(metrics)
    for mesh, s in zip(meshes, samples):
        gt = np.asarray(s["normals"], np.float32)
        pred = np.zeros_like(gt)
        if mesh is not None:
            maps = render_normals(mesh.vertices.detach().float(), mesh.faces, cameras_of(s))
            pred = maps.normal.permute(0, 3, 1, 2).cpu().numpy()
        for p, g, m in zip(pred, gt, np.asarray(s["masks"], bool)):
            normal_metrics.add(p, g, m)
    normals = normal_metrics.result()
    return {**mean_metrics(rows), "NE": normals["NE"], "SNE": normals["SNE"]}


def evaluate_reconstruction(
    vae: ShapeVAE, samples: list[dict], data: ShapeDataConfig, extract: ExtractConfig, device
) -> dict[str, float]:
    """The VAE's own reconstruction of the samples (`reconstruct_meshes`: their surface points at
    `data`'s count, the posterior mean) extracted at `extract` and scored like generation
    (`mesh_scores`, `mean_metrics`): `vae_chamfer`, `vae_fscore`, `vae_normal_consistency`, `vae_empty`."""
    with torch.no_grad():
        meshes = reconstruct_meshes(vae, samples, data, extract, device)
    return {f"vae_{k}": v for k, v in mean_metrics(mesh_scores(meshes, samples)).items()}


def evaluate_checkpoints(
    norld_path: str,
    vae_path: str,
    data: str,
    out: str | os.PathLike | None = None,
    split: str = "val",
    limit: int = 64,
    sample: SampleConfig | None = None,
    extract: ExtractConfig | None = None,
    device: str = "auto",
) -> dict:
    """`evaluate_generation` of saved models on the first `limit` shapes of a split of `data` (a
    shape shard dir or `toy`) and what it was measured on; the figures alone are written to `out` as
    JSON when given (numbers only: a DVC metrics file that `dvc metrics diff` compares across clones)."""
    dev = resolve_device(device)
    model, vae = load_norld(norld_path, dev), load_vae(vae_path, dev)
    samples = shape_set(ShapeDataConfig(shards=data, val_shapes=limit), split=split)
    result = evaluate_generation(
        model,
        vae,
        samples,
        sample or SampleConfig(),
        extract or ExtractConfig(resolution=129),
        NormalMetricsConfig(),
        dev,
    )
    result = {**io.nan_to_none(result), "shapes": len(samples)}
    if out is not None:
        io.write_json(out, result)
    return {**result, "norld": str(norld_path), "vae": str(vae_path), "data": str(data), "split": split}
