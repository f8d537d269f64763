"""The one trainer core every model here uses (NiRNE, shape VAE, NoRLD).

A task subclasses `Trainer` and defines `compute_loss` (and optionally `evaluate`, `visualize`,
`trainable_parameters`); the core owns the loop: AdamW with warmup + cosine, gradient clipping,
EMA, bf16 autocast and torch.compile on CUDA, DDP when launched with several processes (torchrun
or Ray Train), periodic logging / validation / visualization / checkpoints, MLflow tracking from
rank 0 only, and exact resumption: `RUN/checkpoints/last.pt` holds model, optimizer, scheduler,
EMA, step, data position and RNG, so a killed run continues the same loss curve.

The data object is any iterator of batches (dicts of tensors) with `state_dict()` and
`load_state_dict()` giving its position (see `hi3dgen.training.data.ViewBatches`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.profiler import record_function

from hi3dgen import checkpoint, tracking
from hi3dgen.device import resolve_device
from hi3dgen.training.ema import EMA
from hi3dgen.training.optim import OptimConfig, build_optimizer, build_scheduler
from hi3dgen.training.tracking import Tracker, TrackingConfig

PRECISIONS = ("auto", "bf16", "fp32")


@dataclasses.dataclass
class TrainerConfig:
    steps: int = 1000
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    ema_decay: float = 0.999  # 0 disables the EMA
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = True  # torch.compile; only ever applied on CUDA
    channels_last: bool = True  # conv nets run faster in NHWC on CUDA
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end
    vis_every: int = 0  # 0: only at the end
    ckpt_every: int = 200

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, not {self.steps}")
        for name in ("log_every", "val_every", "vis_every", "ckpt_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if not (math.isfinite(self.optim.lr) and self.optim.lr > 0):
            raise ValueError(f"lr must be a positive number, not {self.optim.lr}")


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched with WORLD_SIZE > 1 (torchrun), or use the one a launcher
    (Ray Train) already set up; a plain process is rank 0 of 1."""
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return DistEnv()
        cuda = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class Trainer:
    """Subclass and define `compute_loss(model, batch) -> (loss, metrics)`; `model` is the wrapped
    (compiled / DDP) module to call, `self.model` the plain one (for state dicts and evaluation)."""

    kind = "model"  # stored in checkpoints so loaders know what they hold

    def __init__(self, cfg: TrainerConfig, model: nn.Module, data, out_dir: str | os.PathLike,
                 run_config: dict, tracking: TrackingConfig | None = None):
        cfg.__post_init__()  # command-line flags may have set fields after construction
        self.cfg = cfg
        self.env = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.env.local_rank)
        self.out_dir = Path(out_dir)
        self.ckpt_path = self.out_dir / "checkpoints" / checkpoint.LAST
        self.run_config = run_config
        self.data = data
        torch.manual_seed(cfg.seed + self.env.rank)
        cuda = self.device.type == "cuda"
        torch.backends.cudnn.benchmark = cuda  # fixed crop sizes: let cuDNN pick its fastest kernels
        self.autocast_dtype = torch.bfloat16 if (cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)) else None
        self.channels_last = cfg.channels_last and cuda
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.params = self.trainable_parameters()
        if not self.params:
            raise ValueError("nothing to train: every parameter is frozen")
        self.optimizer = build_optimizer(self.params, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.steps)
        wrapped = self.model
        if self.env.world_size > 1:  # DDP broadcasts rank 0's weights: the EMA starts from those
            wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=[self.device.index] if cuda else None)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.train_model = torch.compile(wrapped) if (cfg.compile and cuda) else wrapped
        self.tracker = Tracker(tracking or TrackingConfig(enabled=False), active=self.env.is_main)
        self.step = 0
        self.history: list[dict] = []

    # ---- task hooks -------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def compute_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Validation metrics, computed with `self.model` (EMA weights loaded, eval mode)."""
        return {}

    def visualize(self) -> dict[str, np.ndarray]:
        """Named uint8 (H, W, 3) images to log (EMA weights loaded, eval mode)."""
        return {}

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step,
            "data": self.data.state_dict(),
            "rng": checkpoint.rng_state(),
            "tracking_run_id": self.tracker.run_id,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} model, this trainer trains {self.kind!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
        self.data.load_state_dict(state["data"])
        checkpoint.set_rng_state(state["rng"])
        if self.env.rank:  # only rank 0's generators are saved; the others must still differ from it
            torch.manual_seed(self.cfg.seed + 7919 * self.step + self.env.rank)
        self.tracker.run_id = state.get("tracking_run_id")

    def save_checkpoint(self) -> None:
        if self.env.is_main:
            checkpoint.save(self.ckpt_path, self.state_dict())
        if self.env.world_size > 1:
            dist.barrier()

    def export_weights(self) -> dict:
        """The weights a user runs: the EMA's when there is one."""
        return self.ema.weights(self.model) if self.ema else self.model.state_dict()

    # ---- loop -------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device, non_blocking=True)
                if self.channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimizer step; returns detached metrics (tensors: no device sync here)."""
        batch = self._to_device(batch)
        with self._autocast(), record_function("trainer.loss"):
            loss, metrics = self.compute_loss(self.train_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        with record_function("trainer.backward"):
            loss.backward()
        out = {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}
        if self.cfg.optim.grad_clip > 0:
            out["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        out["lr"] = torch.tensor(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        self.step += 1
        return out

    @contextlib.contextmanager
    def _eval_mode(self):
        self.model.eval()
        try:
            with (self.ema.applied(self.model) if self.ema else contextlib.nullcontext()), torch.no_grad():
                yield
        finally:
            self.model.train()

    def _run_evaluate(self) -> dict[str, float]:
        with self._eval_mode():
            metrics = {f"val/{k}": float(v) for k, v in self.evaluate().items()}
        self.tracker.log_metrics(metrics, self.step)
        return metrics

    def _run_visualize(self) -> None:
        if not self.env.is_main:
            return
        with self._eval_mode():
            images = self.visualize()
        for name, img in images.items():
            self.tracker.log_image(name, img, self.step)

    def _reduce(self, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        names = sorted(metrics)
        values = torch.stack([metrics[k].float().to(self.device) for k in names])
        if self.env.world_size > 1:
            dist.all_reduce(values)
            values /= self.env.world_size
        return dict(zip(names, values.tolist()))

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def train(self, stop_at: int | None = None) -> dict[str, float]:
        """Train to `cfg.steps`, resuming from `RUN/checkpoints/last.pt` when it exists. `stop_at`
        ends this process early after that step (a checkpoint is written there), as a preemption
        would; calling `train()` again in a fresh trainer continues the run."""
        if self.ckpt_path.exists():
            self.load_state_dict(checkpoint.load(self.ckpt_path))
        self.tracker.start(self.run_config, run_id=self.tracker.run_id)
        end = self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
        self.model.train()
        metrics: dict[str, float] = {}
        t0, s0 = time.perf_counter(), self.step
        try:
            while self.step < end:
                out = self.train_step(next(self.data))
                if self._due(self.cfg.log_every) or self.step == end:
                    logged = {f"train/{k}": v for k, v in self._reduce(out).items()}
                    if not math.isfinite(logged["train/loss"]):  # checked here: a per-step check would sync the GPU
                        raise FloatingPointError(f"training loss is {logged['train/loss']} at step {self.step}")
                    dt = time.perf_counter() - t0
                    logged["train/samples_per_s"] = (self.step - s0) * self.batch_size() * self.env.world_size / dt
                    t0, s0 = time.perf_counter(), self.step
                    self.history.append({"step": self.step, **logged})
                    self.tracker.log_metrics(logged, self.step)
                if self._due(self.cfg.val_every):
                    metrics = self._run_evaluate()
                if self._due(self.cfg.vis_every):
                    self._run_visualize()
                if self._due(self.cfg.ckpt_every) or self.step == end:
                    self.save_checkpoint()
            if self.step >= self.cfg.steps:
                if not self._due(self.cfg.val_every):
                    metrics = self._run_evaluate()
                if not self._due(self.cfg.vis_every):
                    self._run_visualize()
                self._finish()
        except BaseException:
            self.tracker.end("FAILED")
            raise
        if self.step < self.cfg.steps:
            self.tracker.end("KILLED")
        return metrics

    def batch_size(self) -> int:
        return getattr(self.data, "batch_size", 1)

    def _finish(self) -> None:
        """Write `RUN/model.pt` (kind, config, exported weights) and log it as the run's model."""
        if self.env.is_main:
            path = self.out_dir / "model.pt"
            checkpoint.save(path, {"kind": self.kind, "config": self.run_config, "model": self.export_weights()})
            self.tracker.log_artifact(path, "model")
            self.tracker.log_loss_curves(self.step)
            self.tracker.register_model(f"{tracking.REGISTERED_PREFIX}{self.kind}", "model")
        self.tracker.end("FINISHED")
