"""A deterministic task for the trainer core: a linear model fit to fixed random pairs by mean squared
error, whose loss on a batch is the mean of its equal-sized micro-batches' losses (no random noise, no
masks), so gradient accumulation can be checked against one large batch."""

import torch
import torch.nn.functional as F

from hi3dgen.data.batches import Batches, ListStream
from hi3dgen.training.optim import OptimConfig
from hi3dgen.training.trainer import Trainer, TrainerConfig


class Regression(Trainer):
    kind = "regression"

    def compute_loss(self, model, batch):
        return F.mse_loss(model(batch["x"]), batch["y"]), {}


def regression(out, batch_size: int, grad_accum: int = 1, steps: int = 3) -> Regression:
    """A trainer of `steps` optimizer steps of `grad_accum` micro-batches of `batch_size` (per rank)."""
    g = torch.Generator().manual_seed(0)
    samples = [{"x": torch.randn(4, generator=g).numpy(), "y": torch.randn(2, generator=g).numpy()} for _ in range(32)]
    data = Batches(lambda start: ListStream(samples, 0, start, batch_size), batch_size, lambda s, rng: s)
    cfg = TrainerConfig(
        steps=steps,
        grad_accum=grad_accum,
        ema_decay=0,
        device="cpu",
        log_every=1,
        ckpt_every=0,
        optim=OptimConfig(lr=0.05, warmup_steps=0, grad_clip=0),
    )
    torch.manual_seed(0)
    return Regression(cfg, torch.nn.Linear(4, 2), data, out, run_config={})
