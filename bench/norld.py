"""NoRLD: what the online normal regularizer costs and what it does, and generation latency.

    python bench/norld.py vae      --data SHARDS --out RUN [--preset small|gpu] [--steps N] [--override JSON]
    python bench/norld.py speed    --vae RUN/model.pt --data SHARDS [--preset small] [--out bench.json]
    python bench/norld.py ablation --vae RUN/model.pt --data SHARDS --out DIR [--preset small] [--steps N]
    python bench/norld.py profile  --vae RUN/model.pt [--preset small]

`speed`: the trainer's own step (fused AdamW, EMA, clipping; bf16 autocast on CUDA, no
torch.compile so timings exclude compilation) with λ = 0 and with the preset's regularizer on
every step (share 1.0), their ratio (one table on stderr, the JSON on stdout and at --out), and
generation latency (NiRNE at 512^2, NoRLD Euler sampling with CFG, VAE decode and marching cubes)
with untrained NiRNE and NoRLD weights (latency does not depend on them). `ablation`: λ > 0 vs
λ = 0 with the same data, steps and seed, each evaluated on the val split (Chamfer, F-score,
normal consistency, NE/SNE of rendered normals). `profile`: the device time of each part of the
regularizer called alone (decode, SDF grid, marching cubes, vertices, rendering; the whole forward
and forward + backward) and, on CUDA, whether it runs without a host sync. Runs on CPU too
(without MLflow).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nirne import timed_ms  # noqa: E402
from hi3dgen.config import build  # noqa: E402
from hi3dgen.device import resolve_device  # noqa: E402
from hi3dgen.eval.shapes import shape_set  # noqa: E402
from hi3dgen.inference.checkpoints import load_vae  # noqa: E402
from hi3dgen.training.norld import (  # noqa: E402
    NoRLDTrainer,
    build_model,
    run_config,  # noqa: E402
)
from hi3dgen.training.vae import VAERunConfig, build_data, train_vae  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def data_layer(args) -> dict:
    """The bench's data and trainer flags as config overrides."""
    data = {"shards": args.data, **({"in_memory": True} if args.in_memory else {})}  # else the preset's
    if args.workers is not None:
        data["workers"] = args.workers
    return {"tracking.enabled": False, "data": data, "trainer": {"compile": False, "device": args.device}}


def norld_config(args, *layers: dict):
    return run_config(args.preset, args.vae, data_layer(args), {"trainer.ckpt_every": 10**9}, *layers)


def make_trainer(cfg, out: Path) -> NoRLDTrainer:
    vae = load_vae(cfg.vae)
    device = resolve_device(cfg.trainer.device)
    return NoRLDTrainer(cfg, build_model(cfg, vae, device), vae, build_data(cfg.data, cfg.trainer.seed), out)


def step_times(cfg, out: Path, steps: int, warmup: int) -> tuple[list[float], list[bool], dict]:
    """Milliseconds of each timed train step, whether the regularizer ran on it, and the metrics
    of the timed steps (means)."""
    t = make_trainer(cfg, out)
    batches = [next(t.data) for _ in range(4)]
    times, active, metrics = [], [], []
    for i in range(warmup + steps):
        on = cfg.reg.active(t.step)
        sync(t.device)
        start = time.perf_counter()
        out = t.train_step(batches[i % len(batches)])
        sync(t.device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
            active.append(on)
            metrics.append({k: float(v) for k, v in out.items()})
    return times, active, {k: statistics.mean(m[k] for m in metrics) for k in metrics[0]}


def generation_latency(args, repeats: int = 5) -> dict:
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.inference.generate import GenerateConfig, Generator
    from hi3dgen.models.nirne import NiRNE
    from hi3dgen.models.norld import NoRLD
    from hi3dgen.training.nirne import NiRNERunConfig

    device = resolve_device(args.device)
    torch.manual_seed(0)
    vae = load_vae(args.vae, device)
    ncfg = norld_config(args)
    norld = NoRLD(ncfg.model).to(device).eval()
    nirne = NiRNE(build(NiRNERunConfig, "base" if device.type == "cuda" else "tiny").model).to(device).eval()
    cfg = GenerateConfig(steps=args.sample_steps, guidance=3.0, extract=ExtractConfig(resolution=129, coarse=33))
    gen = Generator(nirne, vae, norld, cfg)
    res = 512 if device.type == "cuda" else 128
    yy, xx = np.mgrid[:res, :res]
    fg = (yy - res / 2) ** 2 + (xx - res / 2) ** 2 < (res / 3) ** 2
    rgb = np.where(fg[..., None], 0.6, 1.0).astype(np.float32) * np.ones(3, np.float32)
    # a real shape for the mesh stage: the decoded SDF of a val shape's latent, so marching cubes
    # sees a surface of typical size (untrained NoRLD samples decode to arbitrary fields)
    sample = shape_set(dataclasses.replace(ncfg.data, val_shapes=1))[0]
    surface = torch.from_numpy(sample["surface"][: vae.cfg.num_points])[None].to(device)
    with torch.no_grad():
        z_real = vae.encode(surface).mean
    parts: dict[str, list[float]] = {"nirne_ms": [], "sampling_ms": [], "mesh_ms": [], "total_ms": []}
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        normal = gen.normal_map(rgb)
        sync(device)
        t1 = time.perf_counter()
        cond = torch.from_numpy(normal.transpose(2, 0, 1).copy())[None].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            norld.sample(cond, cfg.steps, cfg.guidance)
        sync(device)
        t2 = time.perf_counter()
        with torch.no_grad():
            mesh = vae.extract_meshes(z_real, cfg.extract)[0].to_trimesh()
        sync(device)
        t3 = time.perf_counter()
        if i:  # the first round warms up kernels and caches
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                parts[k].append(v * 1e3)
    out = {k: statistics.median(v) for k, v in parts.items()}
    out.update(
        image=res,
        sample_steps=cfg.steps,
        guidance=cfg.guidance,
        grid=cfg.extract.resolution,
        faces=len(mesh.faces),
        device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    )
    return out


def cmd_vae(args) -> dict:
    steps = {"trainer.steps": args.steps} if args.steps else {}
    cfg = build(VAERunConfig, args.preset, data_layer(args), steps, json.loads(args.override or "{}"))
    start = time.perf_counter()
    metrics = train_vae(cfg, args.out)
    return {"seconds": time.perf_counter() - start, "steps": cfg.trainer.steps, **metrics}


def cmd_speed(args) -> dict:
    """λ = 0 against the preset's regularizer on every step (share 1.0): mean step times, their
    ratio, and the regularizer's face counts and budget overflow on the timed steps."""
    out = Path(args.out or "bench_norld.json").with_suffix("")
    base, _, _ = step_times(norld_config(args, {"reg.weight": 0.0}), out / "off", args.steps, args.warmup)
    cfg = norld_config(args, {"reg.share": 1.0})
    reg, _, metrics = step_times(cfg, out / "on", args.steps, args.warmup)
    off_ms, on_ms = statistics.mean(base), statistics.mean(reg)
    result = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu",
        "batch": cfg.data.batch_size,
        "reg": dataclasses.asdict(cfg.reg),
        "step_ms_no_reg": off_ms,
        "step_ms_reg": on_ms,
        "ratio": on_ms / off_ms,
        "overhead_pct": 100 * (on_ms / off_ms - 1),
        "reg_faces": metrics["reg_faces"],
        "reg_overflow": metrics["reg_overflow"],
        "generation": generation_latency(args),
    }
    print_speed(result)
    return result


def print_speed(r: dict) -> None:
    reg = r["reg"]
    rows = [
        ("train step, λ = 0", f"{r['step_ms_no_reg']:.1f} ms"),
        ("train step, regularizer on every step", f"{r['step_ms_reg']:.1f} ms"),
        ("ratio (goal ≤ 1.25)", f"{r['ratio']:.3f} ({r['overhead_pct']:+.0f}%)"),
        (
            "regularizer",
            f"{reg['max_samples']} samples x {reg['views']} views at {reg['render_size']}², "
            f"grid {reg['extract']['resolution']}³, max {reg['max_faces']} faces",
        ),
        ("faces per mesh (mean), overflow share", f"{r['reg_faces']:.0f}, {r['reg_overflow']:.2f}"),
        ("generation, image → mesh", f"{r['generation']['total_ms']:.0f} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"NoRLD speed, preset {r['preset']}, batch {r['batch']}, {r['device']}", file=sys.stderr)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}", file=sys.stderr)


def cmd_profile(args) -> dict:
    """Where the regularizer's time goes: each part called alone on the same `max_samples` val
    latents and views (decode, SDF grid, marching cubes, vertex queries, rendering), the whole
    forward, and forward + backward, median of 10; on CUDA also whether forward + backward runs
    under `set_sync_debug_mode("error")` (no host sync)."""
    from hi3dgen.geometry.marching_cubes import edge_ends, topology
    from hi3dgen.geometry.mesh_extract import edge_vertices
    from hi3dgen.render.diff_normals import normal_error, render_normal_batch
    from hi3dgen.training import regularizer as R

    cfg = norld_config(args)
    t = make_trainer(cfg, Path(args.out or "bench_norld") / "profile")
    batch, rc, dev = t._to_device(next(t.data)), cfg.reg, t.device
    n = rc.max_samples
    with torch.no_grad():
        z0 = t.vae.encode(batch["surface"][:n]).mean
    views = [batch[k][:n, : rc.views] for k in ("normals", "masks", "K", "c2w")]

    def forward_backward():
        z = z0.clone().requires_grad_(True)
        with t._autocast():
            out = R.normal_regularizer(t.vae, z, *views, rc)
        out.errors.sum().backward()
        return out

    result = {"samples": n, "views": rc.views, "grid": rc.extract.resolution, "max_faces": rc.max_faces}
    if dev.type == "cuda":
        forward_backward()
        sync(dev)
        torch.cuda.set_sync_debug_mode("error")
        try:
            forward_backward()
            result["host_sync"] = "none"
        except RuntimeError as exc:
            result["host_sync"] = str(exc).splitlines()[0]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    with t._autocast(), torch.no_grad():
        tokens = t.vae.decode(z0)
        grids = R.sdf_grids(t.vae, tokens, rc.extract)
        top = topology(grids, rc.max_faces, R.vertex_budget(rc.max_faces))
        pa, pb = edge_ends(top.edges, rc.extract.resolution, rc.extract.bound)

        def vertices():
            f = t.vae.query(tokens, torch.cat([pa, pb], dim=1).to(tokens.dtype)).float()
            return edge_vertices(pa, pb, *f.chunk(2, dim=1))

        def render():
            maps = render_normal_batch(vert, top.faces, *views[2:], tuple(views[1].shape[-2:]), rc.backend)
            return normal_error(maps, views[0].permute(0, 1, 3, 4, 2).float(), views[1])

        vert = vertices()
        parts = {
            "decode": lambda: t.vae.decode(z0),
            "sdf_grid": lambda: R.sdf_grids(t.vae, tokens, rc.extract),
            "marching_cubes": lambda: topology(grids, rc.max_faces, R.vertex_budget(rc.max_faces)),
            "vertices": vertices,
            "render": render,
            "forward": lambda: R.normal_regularizer(t.vae, z0, *views, rc),
        }
        result["ms"] = {name: timed_ms(fn, 10, 3, dev) for name, fn in parts.items()}
    result["ms"]["forward_backward"] = timed_ms(forward_backward, 10, 3, dev)
    result["faces"] = top.face_count.tolist()
    return result


def cmd_ablation(args) -> dict:
    results = {}
    for name, weight in (("lambda0", 0.0), (f"lambda{args.weight:g}", args.weight)):
        cfg = norld_config(args, {"reg.weight": weight}, {"trainer.steps": args.steps} if args.steps else {})
        start = time.perf_counter()
        t = make_trainer(cfg, Path(args.out) / name)
        metrics = t.train()  # ends with the validation: generation from val normal maps, EMA weights
        seconds = time.perf_counter() - start
        last = t.history[-1]
        results[name] = {
            "weight": weight,
            "steps": cfg.trainer.steps,
            "train_seconds": seconds,
            "final_flow_loss": last["train/flow_loss"],
            "val_shapes": len(t._shape_set()),
            **{k.removeprefix("val/"): v for k, v in metrics.items()},
        }
        save(args, results)  # each variant as it finishes: a cut-off run keeps what it finished
    return results


def save(args, result: dict) -> None:
    """The result as JSON at --out (a .json path, or OUT/<command>.json)."""
    if not args.out or args.command == "vae":
        return
    path = Path(args.out)
    path = path if path.suffix == ".json" else path / f"{args.command}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("vae", "speed", "profile", "ablation"))
    p.add_argument("--data", default="toy")
    p.add_argument("--vae")
    p.add_argument("--out")
    p.add_argument("--preset", default="small")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers (default: the preset's; one shard feeds one)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--in-memory", action="store_true", help="decode the train shards once and keep them")
    p.add_argument("--weight", type=float, default=1.0, help="ablation: λ of the regularized run")
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--override", help="vae: config overrides as JSON, e.g. '{\"model.kl_weight\": 1e-4}'")
    args = p.parse_args()
    if args.command == "speed":
        args.steps = args.steps or 20
    commands = {"vae": cmd_vae, "speed": cmd_speed, "profile": cmd_profile, "ablation": cmd_ablation}
    result = commands[args.command](args)
    print(json.dumps(result, indent=2, default=float))
    save(args, result)


if __name__ == "__main__":
    main()
