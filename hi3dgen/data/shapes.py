"""Shape data for the shape VAE and NoRLD: the batches they train on, made from shape samples
(`hi3dgen.data.webds.shape_dataset`): random subsets of each sample's surface and SDF samples and of
its ground-truth views, resampled to the sizes the models use."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np

from hi3dgen.config import flag
from hi3dgen.data.batches import ListStream
from hi3dgen.data.cameras import scale_intrinsics
from hi3dgen.data.webds import shape_dataset

TOY = "toy"


@dataclasses.dataclass(frozen=True)
class ShapeDataConfig:
    shards: Annotated[str, flag("--data")] = TOY  # a shard dir, or `toy` for analytic shapes
    batch_size: Annotated[int, flag("--batch-size")] = 8
    workers: Annotated[int, flag("--workers")] = 0  # threads that prepare samples
    surface_points: int = 4096  # encoder input per shape (the VAE's num_points)
    sharp_fraction: float = 0.0  # the share of them on sharp edges (the VAE's sharp_fraction)
    sdf_points: int = 4096  # SDF supervision samples per shape and step
    views: int = 0  # ground-truth views per sample in a batch (NoRLD: condition + regularizer)
    in_memory: bool = False  # decode a shard set once and keep it (small sets: no per-step decoding)
    view_size: int = 0  # their resolution (0: as stored)
    cond_size: int = 0  # > 0: also the first of them at this resolution as `cond` (NoRLD's condition)
    val_shapes: int = 8  # val shapes evaluated during training
    vis_shapes: int = 2
    toy_train: int = 64
    toy_views: int = 4
    toy_size: int = 64  # toy views' resolution


def _subset(rng: np.random.Generator | None, n: int, k: int) -> np.ndarray:
    """k random rows of n, or with rng None k rows evenly spread over all n: SDF samples come in
    blocks (near-surface per sigma, near edges, uniform), and the first k alone would be only the
    thinnest shell (where val sign accuracy was 0.51 with the SDF well learned)."""
    if rng is None:
        return (np.arange(k) * n) // k if k <= n else np.arange(k) % n
    return rng.choice(n, k, replace=n < k)


def resample_views(sample: dict, pick: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Views `pick` of a sample at `size` pixels on the longer side, sampled at the new pixel
    centres (nearest: normals stay exact unit vectors), with K scaled to match."""
    h, w = int(sample["cameras"]["height"]), int(sample["cameras"]["width"])
    s = (size or max(h, w)) / max(h, w)
    rows = np.minimum((np.arange(round(h * s)) + 0.5) / s, h - 1).astype(int)
    cols = np.minimum((np.arange(round(w * s)) + 0.5) / s, w - 1).astype(int)
    K = scale_intrinsics(np.asarray(sample["cameras"]["K"], np.float32)[pick], s)
    return {
        "normals": np.asarray(sample["normals"], np.float32)[pick][:, :, rows][:, :, :, cols],
        "masks": np.asarray(sample["masks"], bool)[pick][:, rows][:, :, cols],
        "K": K,
        "c2w": np.asarray(sample["cameras"]["c2w"], np.float32)[pick],
    }


def prepare_shape(sample: dict, cfg: ShapeDataConfig, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Random subsets of the surface points (a `sharp_fraction` share of them from the points on
    sharp edges, where the shape has any) and SDF samples and, with `cfg.views`, that many random
    ground-truth views (normals (V, 3, S, S), masks, K, c2w) at `view_size`, the first of them also
    as the condition `cond` (3, C, C) at `cond_size`. rng None: fixed rows (validation)."""
    surface, sharp, sdf = sample["surface"], sample["sharp"], sample["sdf"]
    n_sharp = int(round(cfg.surface_points * cfg.sharp_fraction)) if len(sharp) else 0
    uniform = surface[_subset(rng, len(surface), cfg.surface_points - n_sharp)]
    out = {
        "surface": np.concatenate([uniform, sharp[_subset(rng, len(sharp), n_sharp)]]),
        "sdf": sdf[_subset(rng, len(sdf), cfg.sdf_points)],
    }
    if cfg.views:
        n = len(sample["normals"])
        pick = _subset(rng, n, cfg.views) if rng is not None else np.arange(cfg.views) % n
        out.update(resample_views(sample, pick, cfg.view_size))
        if cfg.cond_size:
            out["cond"] = resample_views(sample, pick[:1], cfg.cond_size)["normals"][0]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def val_samples(cfg: ShapeDataConfig, split: str = "val") -> list[dict]:
    """The first `val_shapes` decoded samples of a split of the shard dir, in a fixed order."""
    out = []
    for sample in shape_dataset(cfg.shards, split=split):
        out.append(sample)
        if len(out) >= cfg.val_shapes:
            break
    return out


def shard_stream(cfg: ShapeDataConfig, seed: int):
    """start -> this rank's endless, shuffled stream of train shapes of the shard dir after `start`
    consumed ones (the contract of `Batches`): decoded once and kept with `in_memory`. Opened once
    here so a bad shard dir fails before training."""
    if cfg.in_memory:
        samples = list(shape_dataset(cfg.shards, split="train"))
        return lambda start: ListStream(samples, seed, start, cfg.batch_size)

    def open_stream(start: int):
        return shape_dataset(
            cfg.shards, split="train", shuffle=True, seed=seed, resampled=True, start=start, batch_size=cfg.batch_size
        )

    open_stream(0)
    return open_stream
