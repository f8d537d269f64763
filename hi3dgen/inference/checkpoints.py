"""Loading trained models from their files: `RUN/model.pt` (the exported weights) or a training
checkpoint `RUN/checkpoints/last.pt` (its EMA weights unless asked for the raw ones), for every
model kind, in eval mode on a device."""

from __future__ import annotations

import os

import torch

from hi3dgen import checkpoint
from hi3dgen.config import from_dict
from hi3dgen.models.backbones import build_nirne
from hi3dgen.models.nirne import NiRNEBase, NiRNEConfig
from hi3dgen.models.norld import NoRLD, NoRLDConfig
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig


def load_weights(path: str | os.PathLike, kind: str, use_ema: bool = True) -> tuple[dict, dict]:
    """(run config, weights) of a `kind` model's file."""
    state = checkpoint.load(path)
    if state.get("kind") != kind:
        raise ValueError(f"{path} holds a {state.get('kind')!r} model, not a {kind!r} one")
    return state["config"], checkpoint.usable_weights(state, use_ema)


def nirne_from_state(state: dict, source: str, use_ema: bool = True) -> NiRNEBase:
    """The NiRNE a checkpoint dict holds; `source` names it in errors."""
    if state.get("kind") != "nirne":
        raise ValueError(f"{source} is not a NiRNE checkpoint (kind {state.get('kind')!r})")
    with torch.device("meta"):  # no random init to overwrite (it takes seconds per 100M parameters)
        model = build_nirne(from_dict(NiRNEConfig, state["config"]["model"]).architecture())
    model.load_state_dict(checkpoint.usable_weights(state, use_ema), assign=True)
    return model


def load_nirne(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True) -> NiRNEBase:
    return nirne_from_state(checkpoint.load(path), str(path), use_ema).to(device).eval()


def load_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> ShapeVAE:
    config, weights = load_weights(path, "shape_vae")
    model = ShapeVAE(from_dict(ShapeVAEConfig, config["model"]))
    model.load_state_dict(weights)
    return model.to(device).eval()


def load_norld(path: str | os.PathLike, device: str | torch.device = "cpu") -> NoRLD:
    config, weights = load_weights(path, "norld")
    model = NoRLD(from_dict(NoRLDConfig, config["model"]))
    model.load_state_dict(weights)
    return model.to(device).eval()
