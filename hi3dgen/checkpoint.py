"""Checkpoint files: writing and reading them, the layout of a run's `checkpoints/` folder, the RNG
state they carry, and the one place that merges an EMA into weights. A checkpoint is written to a
temporary name and renamed, so a run killed while saving still has its previous `last.pt`."""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from hi3dgen import io

LAST = "last.pt"
BEST = "best.pt"
STEP_RE = re.compile(r"^step_(\d{8})\.pt$")


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and every CUDA device) generator states, as plain tensors/lists
    so that the checkpoint loads with `weights_only=True`."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | os.PathLike, state: dict) -> None:
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def step_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def step_files(folder: str | os.PathLike) -> dict[int, Path]:
    """The step checkpoints in `folder` by step: only names of the pattern `save_step` writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): folder / m.group(0) for m in map(STEP_RE.match, os.listdir(folder)) if m}


def save_step(folder: str | os.PathLike, step: int, state: dict, keep: int) -> Path:
    """Write `folder/step_<step>.pt`, make `last.pt` the same file (a hard link: the bytes are written
    once), then delete the step checkpoints before the newest `keep` up to this step (0 keeps them
    all). Step files past `step` (of a run resumed from an earlier point) are left: they are
    overwritten when the run gets there."""
    folder = Path(folder)
    path = folder / step_name(step)
    save(path, state)
    with io.atomic_path(folder / LAST) as tmp:
        tmp.unlink()
        try:
            os.link(path, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(path, tmp)
    if keep:
        files = step_files(folder)
        for s in sorted(s for s in files if s <= step)[:-keep]:
            files[s].unlink()
    return path


def load(path: str | os.PathLike) -> dict:
    """A checkpoint (`RUN/checkpoints/last.pt`, `step_*.pt`) or exported model (`RUN/model.pt`,
    `RUN/checkpoints/best.pt`): a dict with its `kind`. Any other file is a ValueError that says
    what it is (torch's own messages speak of pickle internals)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a torn or foreign file
        raise ValueError(
            f"{path} is not a checkpoint torch can read: another kind of file, or one cut short "
            f"by an interrupted copy ({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict) or "kind" not in state:
        what = (
            f"a dict without 'kind' (keys {sorted(map(str, state))[:5]})"
            if isinstance(state, dict)
            else f"a {type(state).__name__}"
        )
        raise ValueError(
            f"{path} holds {what}, not a model or checkpoint written by `hi3dgen train` "
            "(RUN/model.pt or RUN/checkpoints/last.pt)"
        )
    return state


def merge_ema(weights: dict, shadow: dict) -> dict:
    """`weights` (a state dict) with the EMA's averaged tensors in place, in the weights' dtypes."""
    return {k: (shadow[k].to(v.dtype) if k in shadow else v) for k, v in weights.items()}


def usable_weights(state: dict, use_ema: bool = True) -> dict:
    """The weights to run of a checkpoint dict: `RUN/model.pt`'s exported ones, or a training
    checkpoint's (`RUN/checkpoints/last.pt`) with its EMA merged in unless `use_ema` is false."""
    if use_ema and state.get("ema"):
        return merge_ema(state["model"], state["ema"]["shadow"])
    return state["model"]
