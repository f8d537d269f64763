"""The one trainer core every model here uses (NiRNE, shape VAE, NoRLD).

A task subclasses `Trainer` and defines `compute_loss` (and optionally `evaluate`, `visualize`,
`trainable_parameters`); the core owns the loop: AdamW with warmup + cosine, gradient clipping and
accumulation, EMA, bf16 autocast and torch.compile on CUDA, DDP when launched with several
processes (torchrun or Ray Train), periodic logging / validation (sharded over the ranks) /
visualization / checkpoints, MLflow tracking from rank 0 only, and exact resumption, so a killed
run continues the same loss curve on every rank.

The run folder, written by rank 0 only:

    RUN/checkpoints/step_00000100.pt   the training state at step 100: model, optimizer, scheduler,
                                       EMA, step, data position, every rank's RNG state, the best
                                       validation value so far; the newest `keep_last` are kept,
                                       older ones deleted
    RUN/checkpoints/last.pt            the newest step checkpoint (a hard link to it, no second
                                       copy): what a run resumes from and `--init` takes
    RUN/checkpoints/best.pt            model only (kind, config, exported weights, step, metric,
                                       value) each time the val metric `best_metric` improves
    RUN/model.pt                       model only at the end, logged and registered in MLflow

The data object is any iterator of batches (dicts of tensors) with `state_dict()` and
`load_state_dict()` giving its position (see `hi3dgen.data.batches.Batches`); every micro-batch
counts. A resumed run needs the same number of ranks as the one that wrote the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import psutil
import torch
import torch.distributed as dist
from torch import nn
from torch.profiler import record_function

from hi3dgen import checkpoint, io, tracking
from hi3dgen.config import flag
from hi3dgen.device import resolve_device
from hi3dgen.training.ema import EMA
from hi3dgen.training.optim import OptimConfig, build_optimizer, build_scheduler
from hi3dgen.training.tracking import Tracker, TrackingConfig

PRECISIONS = ("auto", "bf16", "fp32")
BEST_MODES = ("min", "max")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    steps: Annotated[int, flag("--steps")] = 1000
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    ema_decay: float = 0.999  # 0 disables the EMA
    precision: Annotated[str, flag("--precision")] = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: Annotated[bool, flag("--compile")] = True  # torch.compile; only ever applied on CUDA
    channels_last: bool = True  # conv nets run faster in NHWC on CUDA
    device: Annotated[str, flag("--device")] = "auto"  # auto | cpu | cuda
    seed: Annotated[int, flag("--seed")] = 0
    log_every: Annotated[int, flag("--log-every")] = 10
    val_every: Annotated[int, flag("--val-every")] = 0  # 0: validate only at the end
    vis_every: Annotated[int, flag("--vis-every")] = 0  # 0: only at the end
    ckpt_every: Annotated[int, flag("--ckpt-every")] = 200
    keep_last: Annotated[int, flag("--keep-last")] = 3  # step checkpoints kept; 0 keeps all
    grad_accum: Annotated[int, flag("--grad-accum")] = 1  # micro-batches per optimizer step (the loss is their mean)
    best_metric: Annotated[str, flag("--best-metric")] = "auto"  # of checkpoints/best.pt; auto: the task's, "": none
    best_mode: str = "min"  # min | max: which way is better
    # Seconds this process may run, counted from its start (data loading included; 0: no limit):
    # past them the run checkpoints at the next log step and ends, and the same command again
    # resumes it. For a scheduler's wall clock or a lent GPU.
    time_limit: Annotated[float, flag("--time-limit")] = 0.0

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, not {self.steps}")
        for name in ("log_every", "val_every", "vis_every", "ckpt_every", "keep_last", "time_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be at least 1, not {self.grad_accum}")
        if self.best_mode not in BEST_MODES:
            raise ValueError(f"best_mode must be one of {BEST_MODES}, not {self.best_mode!r}")
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
    default_best_metric = ""  # the val metric `best_metric: auto` means (none here)

    @property
    def run_name(self) -> str:
        """The MLflow run's name when the config names none."""
        return self.kind

    def __init__(
        self,
        cfg: TrainerConfig,
        model: nn.Module,
        data,
        out_dir: str | os.PathLike,
        run_config: dict,
        tracking: TrackingConfig | None = None,
    ):
        self.cfg = cfg
        self.env = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, self.env.local_rank)
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.ckpt_path = self.ckpt_dir / checkpoint.LAST
        self.run_config = run_config
        self.data = data
        self.best_metric = self.default_best_metric if cfg.best_metric == "auto" else cfg.best_metric
        self.best: dict | None = None  # {"metric", "value", "step"} of best.pt
        torch.manual_seed(cfg.seed + self.env.rank)
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.set_device(self.device)  # NCCL collectives of objects use the current device
        torch.backends.cudnn.benchmark = cuda  # fixed crop sizes: let cuDNN pick its fastest kernels
        self.autocast_dtype = (
            torch.bfloat16 if (cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)) else None
        )
        self.channels_last = cfg.channels_last and cuda
        self.model = model.to(
            self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format
        )
        self.params = self.trainable_parameters()
        if not self.params:
            raise ValueError("nothing to train: every parameter is frozen")
        self.optimizer = build_optimizer(self.params, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.steps)
        self.ddp = None
        if self.env.world_size > 1:  # DDP broadcasts rank 0's weights: the EMA starts from those
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index] if cuda else None)
        wrapped = self.ddp or self.model
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.train_model = torch.compile(wrapped) if (cfg.compile and cuda) else wrapped
        tracking = tracking or TrackingConfig(enabled=False)
        tracking = dataclasses.replace(tracking, run_name=tracking.run_name or self.run_name)
        self.tracker = Tracker(tracking, active=self.env.is_main)
        self.step = 0
        self.history: list[dict] = []

    # ---- task hooks -------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def compute_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Validation metrics, computed with `self.model` (EMA weights loaded, eval mode) by every
        rank: each evaluates its share (`val_batches`) and combines the ranks' sums (`all_gather`),
        so all ranks return the figures one process would."""
        return {}

    def visualize(self) -> dict[str, np.ndarray]:
        """Named uint8 (H, W, 3) images to log (EMA weights loaded, eval mode)."""
        return {}

    # ---- ranks ------------------------------------------------------------------------------
    def all_gather(self, obj) -> list:
        """`obj` of every rank, in rank order (a collective: every rank calls it)."""
        if self.env.world_size == 1:
            return [obj]
        out = [None] * self.env.world_size
        dist.all_gather_object(out, obj)
        return out

    def val_batches(self, items: list, batch_size: int) -> list[tuple[int, list]]:
        """This rank's share of a validation set as (index of the batch in the set, batch): the set
        is cut into batches of `batch_size` and each rank takes a contiguous run of them, so the
        batches are those one process evaluates and the ranks' results in rank order are in the
        set's order."""
        batches = list(enumerate(items[i : i + batch_size] for i in range(0, len(items), batch_size)))
        n, r, w = len(batches), self.env.rank, self.env.world_size
        return batches[n * r // w : n * (r + 1) // w]

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The training state (a collective: every rank gives its RNG state)."""
        return {
            "kind": self.kind,
            "config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step,
            "data": self.data.state_dict(),
            "rng": self.all_gather(checkpoint.rng_state()),
            "best": self.best,
            "tracking_run_id": self.tracker.run_id,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} model, this trainer trains {self.kind!r}")
        ranks = len(state["rng"])
        if ranks != self.env.world_size:  # the data streams are split by rank too: no exact resume
            raise ValueError(
                f"the checkpoint was written by {ranks} rank(s), this run has {self.env.world_size}: "
                "resume with as many ranks as wrote it"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
        self.data.load_state_dict(state["data"])
        checkpoint.set_rng_state(state["rng"][self.env.rank])
        self.best = state["best"]
        self.tracker.run_id = state.get("tracking_run_id")

    def save_checkpoint(self) -> None:
        state = self.state_dict()
        if self.env.is_main:
            checkpoint.save_step(self.ckpt_dir, self.step, state, self.cfg.keep_last)
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

    def train_step(self, *micro_batches: dict) -> dict[str, torch.Tensor]:
        """One optimizer step on the mean loss of `micro_batches` (`grad_accum` of them in `train`);
        DDP all-reduces the gradients on the last one only. Returns the metrics' means over the
        micro-batches, detached (tensors: no device sync here)."""
        n = len(micro_batches)
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            local = self.ddp is not None and i < n - 1
            with self.ddp.no_sync() if local else contextlib.nullcontext():
                with self._autocast(), record_function("trainer.loss"):
                    loss, metrics = self.compute_loss(self.train_model, batch)
                with record_function("trainer.backward"):
                    (loss / n).backward()
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums[k] + v.detach() if k in sums else v.detach()
        out = {k: v / n for k, v in sums.items()}
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
            with self.ema.applied(self.model) if self.ema else contextlib.nullcontext(), torch.no_grad():
                yield
        finally:
            self.model.train()

    def _run_evaluate(self) -> dict[str, float]:
        with self._eval_mode():
            metrics = {f"val/{k}": float(v) for k, v in self.evaluate().items()}
        self.tracker.log_metrics(metrics, self.step)
        self._keep_best(metrics)
        return metrics

    def _keep_best(self, metrics: dict[str, float]) -> None:
        """Write `best.pt` when `best_metric` beats the best value so far (NaN never does)."""
        if not self.best_metric:
            return
        if self.best_metric not in metrics:
            raise ValueError(
                f"best_metric {self.best_metric!r} is not a val metric of {self.kind} (those are {sorted(metrics)})"
            )
        value = metrics[self.best_metric]
        if not math.isfinite(value):
            return
        if self.best is not None:
            best = self.best["value"]
            if not (value < best if self.cfg.best_mode == "min" else value > best):
                return
        self.best = {"metric": self.best_metric, "value": value, "step": self.step}
        if self.env.is_main:
            checkpoint.save(
                self.ckpt_dir / checkpoint.BEST,
                {"kind": self.kind, "config": self.run_config, "model": self.export_weights(), **self.best},
            )

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
        if self.env.is_main:
            io.remove_temp_files(self.ckpt_dir)  # what a kill while saving left
        if self.ckpt_path.exists():
            self.load_state_dict(checkpoint.load(self.ckpt_path))
            if self.env.is_main:
                print(f"[{self.kind}] resuming from {self.ckpt_path} at step {self.step}", file=sys.stderr)
        self.tracker.start(self.run_config, run_id=self.tracker.run_id)
        end = self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
        self.model.train()
        metrics: dict[str, float] = {}
        t0, s0 = time.perf_counter(), self.step
        started = psutil.Process().create_time()  # what `time_limit` counts from
        try:
            while self.step < end:
                out = self.train_step(*(next(self.data) for _ in range(self.cfg.grad_accum)))
                if self._due(self.cfg.log_every) or self.step == end:
                    logged = {f"train/{k}": v for k, v in self._reduce(out).items()}
                    if not math.isfinite(logged["train/loss"]):  # checked here: a per-step check would sync the GPU
                        raise FloatingPointError(f"training loss is {logged['train/loss']} at step {self.step}")
                    dt = time.perf_counter() - t0
                    samples = (self.step - s0) * self.cfg.grad_accum * self.batch_size() * self.env.world_size
                    logged["train/samples_per_s"] = samples / dt
                    step_s = dt / max(1, self.step - s0)
                    t0, s0 = time.perf_counter(), self.step
                    self.history.append({"step": self.step, **logged})
                    self.tracker.log_metrics(logged, self.step)
                    if self.env.is_main:
                        self._print_progress(logged, step_s, end)
                    if self.cfg.time_limit and self._out_of_time(started) and self.step < end:
                        end = self.step
                        if self.env.is_main:
                            print(
                                f"[{self.kind}] time limit of {self.cfg.time_limit:g} s reached at step "
                                f"{self.step}: checkpointed there, the same command resumes",
                                file=sys.stderr,
                            )
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

    def _print_progress(self, logged: dict[str, float], step_s: float, end: int) -> None:
        """One line a log step: the step, the logged figures, the time a step takes and what is left."""
        figures = " ".join(f"{k.removeprefix('train/')} {v:.4g}" for k, v in logged.items())
        left = (end - self.step) * step_s
        left = f"{left / 60:.1f} min" if left >= 120 else f"{left:.0f} s"
        print(
            f"[{self.kind}] step {self.step}/{self.cfg.steps} {figures} | {step_s * 1e3:.0f} ms/step, {left} left",
            file=sys.stderr,
            flush=True,
        )

    def _out_of_time(self, started: float) -> bool:
        """Whether `time_limit` seconds have passed since `started` (the process's start, epoch
        seconds), as rank 0 sees it (every rank stops at the same step)."""
        over = torch.tensor(float(time.time() - started > self.cfg.time_limit), device=self.device)
        if self.env.world_size > 1:
            dist.broadcast(over, src=0)
        return bool(over.item())

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
