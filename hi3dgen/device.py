"""Which torch device a command runs on."""

from __future__ import annotations

import torch


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """`auto`: CUDA when there is a GPU, else the CPU; with `local_rank` (a distributed run), the
    rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(name)
