"""Exponential moving average of the weights, which evaluation and the exported model use."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from hi3dgen import checkpoint


class EMA:
    """Float32 shadow of every floating-point tensor of the model's state dict. The decay ramps up
    as min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the random init."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        state = model.state_dict()
        torch._foreach_lerp_(list(self.shadow.values()), [state[k].float() for k in self.shadow], 1 - d)

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged tensors in place (in the model's dtypes)."""
        return checkpoint.merge_ema(model.state_dict(), self.shadow)

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Run a block with the averaged weights loaded, then put the training weights back."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights(model))
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.updates = state["updates"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
