"""Shape VAE training on the shape shards (`hi3dgen.data.shapes`), and the train stream NoRLD
training reads too.

`train_vae(cfg, out)` runs the shared trainer core (`hi3dgen.training.trainer`): checkpoints at
`RUN/checkpoints/last.pt`, exact resume, MLflow, EMA. Validation reconstructs val shapes, extracts
their meshes and reports Chamfer, F-score (1% of the object size) and normal consistency against
the ground-truth surface samples; visualization renders the reconstruction at the shape's
ground-truth views beside the ground truth.

Data: shape shards, or `toy`: analytic boxes, spheres and cylinders in the same sample format
(`hi3dgen.synthesis.toy`), for machines without shards (and tests).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
import torch

from hi3dgen.data.batches import Batches, ListStream
from hi3dgen.data.shapes import TOY, ShapeDataConfig, prepare_shape, shard_stream
from hi3dgen.eval.shapes import (
    mean_metrics,
    mesh_scores,
    normals_grid,
    reconstruct_meshes,
    render_meshes,
    sdf_scores,
    shape_set,
)
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig, vae_loss
from hi3dgen.synthesis.toy import toy_shapes
from hi3dgen.training.tracking import TrackingConfig
from hi3dgen.training.trainer import Trainer, TrainerConfig, init_distributed


def train_stream(cfg: ShapeDataConfig, seed: int):
    """start -> this rank's endless, shuffled stream of train shapes after `start` consumed ones
    (the contract of `Batches`): toy shapes, or the shard dir's."""
    if cfg.shards == TOY:
        samples = toy_shapes(cfg, "train")
        return lambda start: ListStream(samples, seed, start, cfg.batch_size)
    return shard_stream(cfg, seed)


def build_data(cfg: ShapeDataConfig, seed: int) -> Batches:
    """The resumable train batch stream (the trainer core's `Batches` over `prepare_shape`)."""
    return Batches(
        train_stream(cfg, seed),
        cfg.batch_size,
        functools.partial(prepare_shape, cfg=cfg),
        seed=seed,
        workers=cfg.workers,
    )


# ---- trainer -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VAERunConfig:
    """`hi3dgen train vae`: a preset (presets/vae/), then any field as a flag."""

    COMPONENT: ClassVar[str] = "vae"
    preset: str = "base"  # presets/vae/<name>.yaml
    model: ShapeVAEConfig = dataclasses.field(default_factory=ShapeVAEConfig)
    data: ShapeDataConfig = dataclasses.field(default_factory=ShapeDataConfig)
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    vis_views: int = 2

    def __post_init__(self):
        # derived, not set: the encoder's input is the model's
        data = dataclasses.replace(
            self.data, surface_points=self.model.num_points, sharp_fraction=self.model.sharp_fraction
        )
        object.__setattr__(self, "data", data)


class VAETrainer(Trainer):
    kind = "shape_vae"
    default_best_metric = "val/chamfer"

    def __init__(self, cfg: VAERunConfig, model: ShapeVAE, data, out_dir):
        self.run_cfg = cfg
        super().__init__(cfg.trainer, model, data, out_dir, run_config=dataclasses.asdict(cfg), tracking=cfg.tracking)
        self._val: list[dict] | None = None

    def compute_loss(self, model, batch):
        surface, sdf = batch["surface"], batch["sdf"]
        pred, post = model(surface, torch.cat([sdf[..., :3], surface[..., :3]], dim=1))
        return vae_loss(self.run_cfg.model, pred.float(), post, sdf)

    def _val_samples(self) -> list[dict]:
        if self._val is None:
            self._val = shape_set(self.run_cfg.data)
        return self._val

    def _reconstruct(self, samples: list[dict]) -> list:
        with self._autocast():
            return reconstruct_meshes(self.model, samples, self.run_cfg.data, self.run_cfg.extract, self.device)

    def evaluate(self) -> dict[str, float]:
        """This rank's share of the val shapes, then every rank's per-shape rows and loss sums:
        the means over the whole set."""
        rows, sums = [], np.zeros(3)  # sdf_loss and sign_acc summed over shapes, shapes
        for _, samples in self.val_batches(self._val_samples(), self.run_cfg.data.batch_size):
            meshes = self._reconstruct(samples)
            rows += mesh_scores(meshes, samples)
            sums += np.append(sdf_scores(self.model, samples, self.run_cfg.data, self.device), len(samples))
        ranks = self.all_gather((rows, sums))
        sdf_loss, sign_acc, n = sum(rank_sums for _, rank_sums in ranks)
        every_row = [row for rank_rows, _ in ranks for row in rank_rows]
        return {**mean_metrics(every_row), "sdf_loss": sdf_loss / n, "sign_acc": sign_acc / n}

    def visualize(self) -> dict[str, np.ndarray]:
        samples = self._val_samples()[: self.run_cfg.data.vis_shapes]
        views = min(self.run_cfg.vis_views, len(samples[0]["normals"]))
        return {"vae_normals": normals_grid(render_meshes(self._reconstruct(samples), samples, views), samples, views)}


def train_vae(cfg: VAERunConfig, out_dir: str, stop_at: int | None = None) -> dict[str, float]:
    """The per-worker training function (plain process, torchrun or Ray Train worker)."""
    init_distributed(cfg.trainer.device)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights for the same seed
    trainer = VAETrainer(cfg, ShapeVAE(cfg.model), build_data(cfg.data, cfg.trainer.seed), out_dir)
    return trainer.train(stop_at=stop_at)
