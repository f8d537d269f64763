"""NoRLD training: rectified-flow matching in the frozen shape VAE's latent space, conditioned on a
ground-truth normal map, plus the online normal regularizer (Hi3DGen, Sec. 3.3).

Regularizer: from the predicted velocity, x̂0 = x_t - t v̂; the frozen VAE decodes it, marching
cubes (on the device) extract meshes whose vertices are differentiable in x̂0, their normal maps are rendered
at the samples' ground-truth views and the masked normal error joins the flow loss with weight λ
(`hi3dgen.training.regularizer`: batched, on the device, no host sync). Its cost is fixed: every
step it runs on, `max_samples` rows (those with t in [t_min, t_max] count, the others weigh 0),
a grid of `extract.resolution` points per side (refined from a coarse one in a band of
`band_points` points), `max_faces` triangles per mesh.

The VAE is not part of the trained model: it is moved to the device, frozen, and never enters the
optimizer, the EMA or the checkpoint (the run config records its path).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.profiler import record_function

from hi3dgen.config import build
from hi3dgen.data.shapes import ShapeDataConfig, prepare_shape
from hi3dgen.device import resolve_device
from hi3dgen.eval.norld import SampleConfig, evaluate_generation, evaluate_reconstruction, generate_meshes
from hi3dgen.eval.normals import NormalMetrics, NormalMetricsConfig
from hi3dgen.eval.shapes import normals_grid, render_meshes, shape_set
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.inference.checkpoints import load_vae, load_weights
from hi3dgen.models import shape_vae
from hi3dgen.models.norld import NoRLD, NoRLDConfig
from hi3dgen.training import regularizer
from hi3dgen.training.regularizer import RegularizerConfig
from hi3dgen.training.tracking import TrackingConfig
from hi3dgen.training.trainer import Trainer, TrainerConfig, init_distributed
from hi3dgen.training.vae import build_data, train_stream


@dataclasses.dataclass(frozen=True)
class NoRLDRunConfig:
    """`hi3dgen train norld`: a preset (presets/norld/), then any field as a flag; the latent shape
    and the data's views follow the VAE and the regularizer (`fit_to_vae`)."""

    COMPONENT: ClassVar[str] = "norld"
    vae: str = ""  # the trained shape VAE (RUN/model.pt)
    preset: str = "base"  # presets/norld/<name>.yaml
    model: NoRLDConfig = dataclasses.field(default_factory=NoRLDConfig)
    data: ShapeDataConfig = dataclasses.field(default_factory=ShapeDataConfig)
    reg: RegularizerConfig = dataclasses.field(default_factory=RegularizerConfig)
    sample: SampleConfig = dataclasses.field(default_factory=SampleConfig)
    eval_extract: ExtractConfig = dataclasses.field(default_factory=lambda: ExtractConfig(resolution=64))
    metrics: NormalMetricsConfig = dataclasses.field(default_factory=NormalMetricsConfig)
    stats_batches: int = 4  # batches whose VAE latents set the latent normalization
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)


def fit_to_vae(cfg: NoRLDRunConfig) -> NoRLDRunConfig:
    """The config with the latent shape and surface points of the VAE's config, and the views the
    condition and the regularizer need."""
    if not cfg.vae:
        raise ValueError("NoRLD trains in a shape VAE's latent space: give --vae VAE_RUN/model.pt")
    vae_cfg, _ = load_weights(cfg.vae, "shape_vae")
    vae_model = vae_cfg["model"]
    model = dataclasses.replace(cfg.model, num_latents=vae_model["num_latents"], latent_dim=vae_model["latent_dim"])
    data = dataclasses.replace(
        cfg.data,
        surface_points=vae_model["num_points"],
        sharp_fraction=vae_model["sharp_fraction"],
        views=max(1, cfg.reg.views),
        view_size=cfg.reg.render_size,
        cond_size=cfg.model.image_size,
    )
    return dataclasses.replace(cfg, model=model, data=data)


def run_config(preset: str, vae: str, *layers: dict) -> NoRLDRunConfig:
    """The preset with `layers` of overrides, fitted to the VAE at `vae`."""
    return fit_to_vae(build(NoRLDRunConfig, preset, {"vae": vae}, *layers))


class NoRLDTrainer(Trainer):
    kind = "norld"
    default_best_metric = "val/chamfer"

    def __init__(self, cfg: NoRLDRunConfig, model: NoRLD, vae: shape_vae.ShapeVAE, data, out_dir):
        self.run_cfg = cfg
        super().__init__(cfg.trainer, model, data, out_dir, run_config=dataclasses.asdict(cfg), tracking=cfg.tracking)
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self._val: list[dict] | None = None
        self._vae_figures: dict[str, float] | None = None  # the frozen VAE's reconstruction: measured once
        self._last_reg = torch.zeros((), device=self.device)
        self._reg_stats = {k: torch.zeros((), device=self.device) for k in ("reg_faces", "reg_overflow")}

    def encode(self, surface: torch.Tensor) -> torch.Tensor:
        """Normalized clean latents x0 of a batch of surfaces (the posterior mean: deterministic)."""
        with torch.no_grad():
            return self.model.normalize(self.vae.encode(surface).mean.float())

    def compute_loss(self, model, batch):
        cfg = self.run_cfg
        x0 = self.encode(batch["surface"])
        b = x0.shape[0]
        t = self.model.sample_t(b, self.device)
        eps = torch.randn_like(x0)
        tb = t[:, None, None]
        xt = (1 - tb) * x0 + tb * eps
        drop = torch.rand(b, device=self.device) < cfg.model.cond_drop
        v = model(xt, t, batch["cond"], drop).float()
        flow = F.mse_loss(v, eps - x0)
        metrics = {"flow_loss": flow.detach()}
        loss = flow
        if cfg.reg.active(self.step):
            # a fixed number of rows, the first eligible ones (no sync): the others weigh 0
            eligible = ~drop & (t >= cfg.reg.t_min) & (t <= cfg.reg.t_max)
            order = torch.arange(b, 0, -1, device=self.device)
            rows = torch.topk(eligible * order, min(cfg.reg.max_samples, b)).indices
            x0_hat = xt[rows] - tb[rows] * v[rows]
            reg = self.normal_regularizer(self.model.denormalize(x0_hat), batch, rows, eligible[rows].float())
            loss = loss + cfg.reg.weight * reg
            self._last_reg = torch.where(eligible.any(), reg.detach(), self._last_reg)
        if cfg.reg.weight > 0:  # the latest values on steps it does not run
            metrics.update(normal_reg_loss=self._last_reg, **self._reg_stats)
        return loss, metrics

    def normal_regularizer(
        self, z: torch.Tensor, batch: dict, rows: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weighted mean (weights default 1) of the masked normal errors of the meshes of latents z
        at their rows' ground-truth views. A latent that decodes to no surface costs the maximum
        error 1 (without a gradient). Face count and budget overflow go to the step's metrics."""
        reg = self.run_cfg.reg
        n = reg.views
        with record_function("norld.reg"):
            out = regularizer.normal_regularizer(
                self.vae, z, *(batch[k][rows, :n] for k in ("normals", "masks", "K", "c2w")), reg
            )
        self._reg_stats = {"reg_faces": out.faces.float().mean(), "reg_overflow": out.overflow.float().mean()}
        w = torch.ones_like(out.errors) if weights is None else weights
        return (w * out.errors).sum() / w.sum().clamp(min=1.0)

    # ---- validation ---------------------------------------------------------------------------
    def _val_samples(self) -> list[dict]:
        if self._val is None:
            self._val = shape_set(self.run_cfg.data)
        return self._val

    def evaluate(self) -> dict[str, float]:
        """`evaluate_generation` of this rank's batches of the val shapes (batch i sampled from seed
        `sample.seed + i`, whichever rank runs it), then every rank's figures weighted by what they
        average over (shapes; shapes with a surface for Chamfer; foreground and sharp pixels of the
        ground-truth views for NE and SNE): the figures of the whole set. With them the VAE's own
        reconstruction of the same shapes at the same extraction (`evaluate_reconstruction`, weighted
        alike: `vae_chamfer` by the shapes its reconstruction gives a surface; the VAE is frozen, so
        measured at the first evaluation and kept) and `chamfer_ratio`, generation's Chamfer over the VAE's."""
        cfg = self.run_cfg
        measure_vae = self._vae_figures is None
        sums: dict[str, tuple[float, float]] = {}
        for i, samples in self.val_batches(self._val_samples(), cfg.data.batch_size):
            sample = dataclasses.replace(cfg.sample, seed=cfg.sample.seed + i)
            result = evaluate_generation(
                self.model, self.vae, samples, sample, cfg.eval_extract, cfg.metrics, self.device
            )
            pixels = NormalMetrics(cfg.metrics)
            for s in samples:
                for g, m in zip(np.asarray(s["normals"], np.float32), np.asarray(s["masks"], bool)):
                    pixels.add(g, g, m)
            counts = pixels.result()
            weights = {
                "chamfer": round(len(samples) * (1 - result["empty"])),
                "NE": counts["pixels"],
                "SNE": counts["sharp_pixels"],
            }
            if measure_vae:
                vae = evaluate_reconstruction(self.vae, samples, cfg.data, cfg.eval_extract, self.device)
                result.update(vae)
                weights["vae_chamfer"] = round(len(samples) * (1 - vae["vae_empty"]))
            for k, v in result.items():
                w = weights.get(k, len(samples))
                total, count = sums.get(k, (0.0, 0))
                sums[k] = (total + (v * w if w else 0.0), count + w)
        ranks = self.all_gather(sums)
        out = {}
        for k in sorted({k for rank in ranks for k in rank}):
            total, count = (sum(parts) for parts in zip(*(rank[k] for rank in ranks if k in rank)))
            out[k] = total / count if count else float("nan")
        if measure_vae:
            self._vae_figures = {k: v for k, v in out.items() if k.startswith("vae_")}
        out.update(self._vae_figures)
        vae_chamfer = out["vae_chamfer"]
        out["chamfer_ratio"] = out["chamfer"] / vae_chamfer if vae_chamfer > 0 else float("nan")
        return out

    def visualize(self) -> dict[str, np.ndarray]:
        samples = self._val_samples()[: self.run_cfg.data.vis_shapes]
        meshes = generate_meshes(
            self.model, self.vae, samples, self.run_cfg.sample, self.run_cfg.eval_extract, self.device
        )
        views = min(self.run_cfg.reg.views, len(samples[0]["normals"]))
        return {"norld_normals": normals_grid(render_meshes(meshes, samples, views), samples, views)}


@torch.no_grad()
def latent_stats(vae: shape_vae.ShapeVAE, data: ShapeDataConfig, seed: int, batches: int, device) -> tuple:
    """Per-channel mean and std of the VAE's posterior means over a few train batches of every rank
    (each reads a stream of its own, so the training stream's position is untouched; the ranks'
    moments are summed, so all ranks normalize alike)."""
    stream = iter(train_stream(data, seed + 1)(0))
    zs = []
    for _ in range(batches):
        surface = np.stack([prepare_shape(next(stream), data, None)["surface"] for _ in range(data.batch_size)])
        zs.append(vae.encode(torch.from_numpy(surface).to(device)).mean.float().reshape(-1, vae.cfg.latent_dim))
    z = torch.cat(zs).double()
    moments = torch.stack([torch.full_like(z[0], len(z)), z.sum(0), z.square().sum(0)])
    if dist.is_initialized():
        dist.all_reduce(moments)
    n, total, squares = moments
    mean = total / n
    std = ((squares - n * mean.square()) / (n - 1)).clamp(min=0).sqrt()
    return mean.float(), std.float().clamp(min=1e-3)


def build_model(cfg: NoRLDRunConfig, vae: shape_vae.ShapeVAE, device) -> NoRLD:
    """A fresh NoRLD (initialized from the run's seed) whose latent normalization is measured with
    the VAE on `device`."""
    torch.manual_seed(cfg.trainer.seed)
    model = NoRLD(cfg.model)
    mean, std = latent_stats(vae.to(device), cfg.data, cfg.trainer.seed, cfg.stats_batches, device)
    model.latent_mean.copy_(mean.cpu())
    model.latent_std.copy_(std.cpu())
    return model


def train_norld(cfg: NoRLDRunConfig, out_dir: str, stop_at: int | None = None) -> dict[str, float]:
    """The per-worker training function (plain process, torchrun or Ray Train worker)."""
    cfg = fit_to_vae(cfg)
    device = resolve_device(cfg.trainer.device, init_distributed(cfg.trainer.device).local_rank)
    vae = load_vae(cfg.vae, device)
    model = build_model(cfg, vae, device)
    trainer = NoRLDTrainer(cfg, model, vae, build_data(cfg.data, cfg.trainer.seed), out_dir)
    return trainer.train(stop_at=stop_at)
