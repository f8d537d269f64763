"""AdamW with linear warmup and cosine decay: the optimizer every trainer here uses."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import torch
from torch import nn

from hi3dgen.config import flag


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: Annotated[float, flag("--lr")] = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping


def build_optimizer(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.AdamW:
    """Norms, biases and embeddings' 1-d tensors get no weight decay."""
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = bool(params) and params[0].is_cuda
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR factor: linear from ~0 to 1 over `warmup` steps, then cosine to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, total_steps, cfg.warmup_steps, cfg.min_lr_ratio)
    )
