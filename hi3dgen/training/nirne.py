"""NiRNE training: stage 1 trains the whole network on the `real` domain; stage 2 starts from stage 1,
freezes the clean stream and fine-tunes the noisy stream, fusion and decoder on `synthetic`
(the paper's domain-specific training). `train_nirne(cfg)` is the per-worker entry point that
a plain process, torchrun or Ray Train calls.

Data: view shards (`hi3dgen.data.webds`), or `toy`: procedural views (`hi3dgen.data.toy`)
for machines without rendered data.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import cv2
import numpy as np
import torch

from hi3dgen import checkpoint
from hi3dgen import tracking as project_tracking
from hi3dgen.data import DOMAIN_FILTERS
from hi3dgen.data.batches import collate
from hi3dgen.data.views import ViewBatches, ViewDataConfig, eval_views, prepare_view, train_stream
from hi3dgen.eval.normals import NormalMetrics, NormalMetricsConfig, angular_error_deg
from hi3dgen.inference.checkpoints import nirne_from_state
from hi3dgen.models.backbones import build_nirne
from hi3dgen.models.nirne import NiRNEBase, NiRNEConfig
from hi3dgen.training.tracking import TrackingConfig
from hi3dgen.training.trainer import Trainer, TrainerConfig, init_distributed

LOSSES = ("l2", "angular")


@dataclasses.dataclass(frozen=True)
class NiRNERunConfig:
    """`hi3dgen train nirne`: a preset (presets/nirne/), then any field as a flag."""

    COMPONENT: ClassVar[str] = "nirne"
    preset: str = "base"  # presets/nirne/<name>.yaml
    stage: int = 1
    stages: tuple[int, ...] = (1, 2)  # (1,): stage 1 only, on every domain
    init: str | None = None  # stage 2: the stage-1 checkpoint
    loss: str = "l2"  # l2 on unit normals (the paper) | angular
    model: NiRNEConfig = dataclasses.field(default_factory=NiRNEConfig)
    data: ViewDataConfig = dataclasses.field(default_factory=ViewDataConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    metrics: NormalMetricsConfig = dataclasses.field(default_factory=NormalMetricsConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)

    def __post_init__(self):
        if self.stage not in self.stages:
            raise ValueError(f"this run has no stage {self.stage} (its stages: {self.stages})")
        if self.stage == 2 and not self.init:
            raise ValueError("stage 2 starts from stage 1: give --init RUN1/checkpoints/last.pt")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        for d in (self.data.domain, self.data.val_domain):
            if d is not None and d not in DOMAIN_FILTERS:
                raise ValueError(f"domain must be one of {DOMAIN_FILTERS}, not {d!r}")

    @property
    def domain(self) -> str:
        if self.data.domain:
            return self.data.domain
        if self.stages == (1,):
            return "any"
        return "real" if self.stage == 1 else "synthetic"


# ---- data ------------------------------------------------------------------------------------


def val_views(cfg: NiRNERunConfig) -> list[dict]:
    """The first `val_samples` val views, resized (not augmented) for batched evaluation."""
    domain = cfg.data.val_domain or cfg.domain
    stream = eval_views(cfg.data, "val", domain)
    plain = dataclasses.replace(cfg.data.augment, enabled=False)
    views = []
    for sample in stream:
        views.append(prepare_view(sample, plain, None))
        if len(views) >= cfg.data.val_samples:
            break
    return views


# ---- visualization ---------------------------------------------------------------------------
def error_heatmap(err_deg: np.ndarray, mask: np.ndarray, max_deg: float = 45.0) -> np.ndarray:
    u8 = np.clip(err_deg / max_deg * 255, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO)[..., ::-1].copy()
    rgb[~mask] = 0
    return rgb


def comparison_grid(image: np.ndarray, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of input | prediction | ground truth | angular error, from (N, 3, H, W) arrays."""
    tiles = []
    for img, p, g, m in zip(image, pred, gt, mask):
        tiles += [
            (np.clip(img.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8),
            project_tracking.normal_to_rgb(p.transpose(1, 2, 0), m),
            project_tracking.normal_to_rgb(g.transpose(1, 2, 0), m),
            error_heatmap(angular_error_deg(p, g), m),
        ]
    return project_tracking.grid(tiles, cols=4)


# ---- trainer ---------------------------------------------------------------------------------
def normal_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over foreground pixels of |pred - gt|^2 (unit vectors) or of the angle (radians)."""
    m = mask.float()
    if kind == "l2":
        per_pixel = ((pred - gt) ** 2).sum(1)
    else:
        per_pixel = torch.acos((pred * gt).sum(1).clamp(-1 + 1e-6, 1 - 1e-6))
    return (per_pixel * m).sum() / m.sum().clamp(min=1)


class NiRNETrainer(Trainer):
    kind = "nirne"
    default_best_metric = "val/NE"

    @property
    def run_name(self) -> str:
        return f"nirne_stage{self.run_cfg.stage}"

    def __init__(self, cfg: NiRNERunConfig, model: NiRNEBase, data: ViewBatches, out_dir):
        cfg = dataclasses.replace(cfg, model=model.cfg)  # the model's: stage 2's from --init, the sd configs
        self.run_cfg = cfg
        super().__init__(cfg.trainer, model, data, out_dir, run_config=dataclasses.asdict(cfg), tracking=cfg.tracking)
        self._val: list[dict] | None = None

    def compute_loss(self, model, batch):
        image = batch["image"]
        t, eps = self.model.sample_noise(image)
        pred = model(image, t, eps)
        loss = normal_loss(pred, batch["normal"], batch["mask"], self.run_cfg.loss)
        return loss, {"noise_level": t.mean()}

    def _val_views(self) -> list[dict]:
        if self._val is None:
            self._val = val_views(self.run_cfg)
        return self._val

    def _predict(self, views: list[dict]) -> tuple[dict, np.ndarray]:
        batch = collate(views)
        with self._autocast():
            pred = self.model(batch["image"].to(self.device))
        return batch, pred.float().cpu().numpy()

    def evaluate(self) -> dict[str, float]:
        """This rank's share of the val views, then the ranks' pixel pools (error histograms, sums
        and counts) added up: the figures of the whole set."""
        metrics = NormalMetrics(self.run_cfg.metrics)
        for _, views in self.val_batches(self._val_views(), self.run_cfg.data.batch_size):
            batch, pred = self._predict(views)
            for p, g, m in zip(pred, batch["normal"].numpy(), batch["mask"].numpy()):
                metrics.add(p, g, m)
        for pool in (metrics.all, metrics.sharp):
            ranks = self.all_gather((pool.hist, pool.total, pool.count))
            pool.hist, pool.total, pool.count = (sum(parts) for parts in zip(*ranks))
        return {
            k: v for k, v in metrics.result().items() if k in ("NE", "SNE", "median", "pct_11.25", "pct_22.5", "pct_30")
        }

    def visualize(self) -> dict[str, np.ndarray]:
        batch, pred = self._predict(self._val_views()[: self.run_cfg.data.vis_samples])
        grid = comparison_grid(batch["image"].numpy(), pred, batch["normal"].numpy(), batch["mask"].numpy())
        return {"val_grid": grid}


def build_model(cfg: NiRNERunConfig) -> NiRNEBase:
    """Stage 1: a fresh model (under the sd backbone, the pretrained one `--backbone-from` names).
    Stage 2: the stage-1 model (its EMA weights) with the clean stream frozen; the architecture
    comes from the stage-1 checkpoint (`model.cfg`, which the run config takes over)."""
    if cfg.stage == 1:
        return build_nirne(cfg.model)
    state = checkpoint.load(cfg.init)
    model = nirne_from_state(state, f"--init {cfg.init}")
    if tuple(state["config"].get("stages", (1, 2))) == (1,):
        raise ValueError(f"--init {cfg.init} was trained with stages (1,): it has no stage 2")
    if model.cfg.dual_stream:
        model.freeze_clean_stream()
    return model


def build_data(cfg: NiRNERunConfig, pin_memory: bool = False) -> ViewBatches:
    return ViewBatches(
        train_stream(cfg.data, cfg.domain, cfg.trainer.seed),
        cfg.data.batch_size,
        cfg.data.augment,
        seed=cfg.trainer.seed,
        workers=cfg.data.workers,
        pin_memory=pin_memory,
    )


def train_nirne(cfg: NiRNERunConfig, out_dir: str, stop_at: int | None = None) -> dict[str, float]:
    """The per-worker training function (plain process, torchrun or Ray Train worker)."""
    init_distributed(cfg.trainer.device)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights for the same seed
    model = build_model(cfg)
    data = build_data(cfg, pin_memory=torch.cuda.is_available() and cfg.trainer.device != "cpu")
    trainer = NiRNETrainer(cfg, model, data, out_dir)
    return trainer.train(stop_at=stop_at)
