"""The shape VAE's SDF loss, A/B on a few DetailVerse shapes on the CPU: the same small VAE trained
the same steps on the same shapes under each loss variant, then the sign accuracy of its
reconstruction per block of the ground-truth SDF samples (near the surface at sigma 0.005 and 0.05,
near sharp edges, uniform in the cube) against the trivial "everything is outside" baseline: a VAE
that has not learned the shapes scores the baseline or below (thin DetailVerse shapes leave ~95% of
the cube outside).

    python bench/rebuild.py --count 16 --out /tmp/dv16 --backend embree --views 4 --resolution 64
    python bench/vae_loss.py /tmp/dv16/shard --steps 300     # ~4 min per variant on one core

Variants (name: ShapeVAEConfig overrides) are `VARIANTS`; `--only` picks some.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hi3dgen.data.shapes import ShapeDataConfig, prepare_shape
from hi3dgen.data.shards import INDEX
from hi3dgen.data.webds import shape_dataset
from hi3dgen.geometry.sdf import sdf_block_counts
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig, vae_loss
from hi3dgen.training.optim import OptimConfig, build_optimizer, build_scheduler

SMALL = dict(num_latents=64, latent_dim=8, width=128, heads=4, enc_layers=1, dec_layers=2, num_points=1024)
VARIANTS = {
    "clamp+surface": dict(sdf_loss="clamp", surface_weight=1.0),  # the loss before 2026-12-03
    "clamp": dict(sdf_loss="clamp", surface_weight=0.0),
    "tanh+surface": dict(sdf_loss="tanh", surface_weight=1.0),
    "tanh": dict(sdf_loss="tanh", surface_weight=0.0),  # the default
}


def blocks(sample: dict, geo: dict) -> dict[str, slice]:
    """The rows of a sample's SDF samples per block (`hi3dgen.geometry.sdf.sdf_block_counts`), from
    the shard set's config `geo`; the rows near sharp edges exist where the shape has sharp edges,
    told here by its sharp surface points."""
    m = len(sample["sdf"])
    n_sharp = int(round(m * geo["sharp_sdf_fraction"])) if len(sample["sharp"]) else 0
    counts = sdf_block_counts(m, geo["uniform_fraction"], n_sharp, len(geo["near_sigmas"]))
    edges = np.cumsum([0, *counts["near"], counts["sharp"], counts["uniform"]])
    names = [f"near σ{sigma}" for sigma in geo["near_sigmas"]] + ["sharp", "uniform"]
    return {name: slice(int(a), int(b)) for name, a, b in zip(names, edges[:-1], edges[1:])}


@torch.no_grad()
def sign_table(model: ShapeVAE, samples: list[dict], data: ShapeDataConfig, geo: dict) -> dict[str, tuple]:
    """Block -> (sign accuracy, all-outside baseline), means over the samples."""
    model.eval()
    rows: dict[str, list] = {}
    for s in samples:
        surface = torch.from_numpy(prepare_shape(s, data, None)["surface"])[None]
        sdf = torch.from_numpy(np.asarray(s["sdf"], np.float32))
        pred = model.query_chunked(model.decode(model.encode(surface).mean), sdf[None, :, :3], 8192)[0]
        for name, rows_of in blocks(s, geo).items():
            gt = sdf[rows_of, 3]
            acc = ((pred[rows_of] < 0) == (gt < 0)).float().mean().item()
            rows.setdefault(name, []).append((acc, (gt >= 0).float().mean().item()))
    model.train()
    return {name: tuple(np.mean(v, axis=0)) for name, v in rows.items()}


def run(variant: dict, train: list[dict], geo: dict, steps: int, lr: float, batch: int) -> tuple[dict, float]:
    cfg = ShapeVAEConfig(**SMALL, **variant)
    data = ShapeDataConfig(surface_points=cfg.num_points, sdf_points=2048)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = ShapeVAE(cfg)
    optim_cfg = OptimConfig(lr=lr, warmup_steps=50)
    opt = build_optimizer(list(model.parameters()), optim_cfg)
    sched = build_scheduler(opt, optim_cfg, steps)
    norms = []
    for step in range(steps):
        batch_rows = [prepare_shape(train[i], data, rng) for i in rng.choice(len(train), batch)]
        surface, sdf = (torch.from_numpy(np.stack([p[k] for p in batch_rows])) for k in ("surface", "sdf"))
        pred, post = model(surface, torch.cat([sdf[..., :3], surface[..., :3]], 1))
        loss, _ = vae_loss(cfg, pred, post, sdf)
        opt.zero_grad()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)))
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"  step {step} loss {loss.item():.4f}", flush=True)
    return sign_table(model, train, data, geo), float(np.median(norms))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--only", nargs="*", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = p.parse_args()
    torch.set_num_threads(1)
    train = list(shape_dataset(args.shards, split="train"))
    geo = json.loads((Path(args.shards) / INDEX).read_text())["config"]
    results = {}
    for name in args.only:
        began = time.perf_counter()
        print(f"{name}: {VARIANTS[name]}", flush=True)
        results[name] = run(VARIANTS[name], train, geo, args.steps, args.lr, args.batch)
        print(f"  {time.perf_counter() - began:.0f} s", flush=True)
    names = list(next(iter(results.values()))[0])
    print(
        f"\n{len(train)} train shapes, {args.steps} steps, batch {args.batch}, lr {args.lr}: sign accuracy on them "
        "(all-outside baseline)"
    )
    print("| variant | " + " | ".join(names) + " | median grad norm |")
    print("|---" * (len(names) + 2) + "|")
    for name, (table, norm) in results.items():
        print(f"| {name} | " + " | ".join(f"{a:.3f} ({b:.3f})" for a, b in table.values()) + f" | {norm:.2f} |")


if __name__ == "__main__":
    main()
