"""Rebuild a DetailVerse training set with one command, on a machine without Ray, Prefect, DVC or
MLflow (the GPU machine): synthesize -> filter -> render -> shard, each through the library's own
stage function, with the time per stage, assets and views per second, and a content digest of the
shards (two runs with the same arguments must print the same digest). The CPU seconds of each stage
(this process and every process under it: worker processes, the forkserver, and those they reaped)
give the core-seconds per asset, which do not depend on how loaded the machine is.

    python bench/rebuild.py --count 2000 --out DIR --executor process --backend nvdiffrast \\
        --views 12 --resolution 512                             # the GPU machine
    python bench/rebuild.py --count 8 --out DIR --backend embree --resolution 64   # CPU, tiny

nvdiffrast falls back to embree where torch sees no CUDA device (the digest then differs: the
backend's version is in every view's meta.json). Each `process` worker renders with its own CUDA
context (created on its first asset; the workers, each on a core of its own, serve all four stages,
so imports and contexts are made once per run): rasterizing an asset's views takes milliseconds,
encoding them tens, so the encoding must run on every core, and handing the rendered arrays (~10 MB
a view) from one rendering process to encoding workers would cost more in pickling than the GPU
time it saves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import psutil

from hi3dgen import manifest as mf
from hi3dgen.data.shards import INDEX, ShardConfig, write_shards
from hi3dgen.filtering.filter import FilterConfig, filter_assets
from hi3dgen.parallel import KINDS, ExecutorConfig
from hi3dgen.render.stage import RenderConfig, render_assets
from hi3dgen.synthesis import synthesize

STAGES = ("synthesize", "filter", "render", "shard")


def add_build_args(p: argparse.ArgumentParser, backend: str) -> None:
    """The executor and render flags the data benches share (`build_configs` reads them)."""
    p.add_argument("--executor", choices=KINDS, default="process")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--backend", default=backend, help="embree | blender | nvdiffrast (embree without CUDA)")
    p.add_argument("--views", type=int, default=12)
    p.add_argument("--resolution", type=int, default=512)


def build_configs(args) -> tuple[ExecutorConfig, RenderConfig]:
    executor = ExecutorConfig(kind=args.executor, workers=args.workers)
    return executor, RenderConfig(backend=pick_backend(args.backend), views=args.views, resolution=args.resolution)


def pick_backend(name: str) -> str:
    """`name`, or embree where nvdiffrast cannot run (no torch, or no CUDA device)."""
    if name != "nvdiffrast":
        return name
    try:
        import torch

        if torch.cuda.is_available():
            return name
        why = f"torch {torch.__version__} sees no CUDA device"
    except ImportError:
        why = "torch is not installed"
    print(f"[rebuild] nvdiffrast cannot run here ({why}): rendering with embree", file=sys.stderr)
    return "embree"


def cpu_seconds() -> float:
    """CPU time so far of this process and of every process under it, living or reaped."""
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # exited since listed: its parent has it as reaped time
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def shard_digest(shard_dir: Path) -> str:
    """sha256 of shards.json, which holds every shard's sha256, sample counts and the config."""
    return hashlib.sha256((shard_dir / INDEX).read_bytes()).hexdigest()


def rebuild(
    out: Path, count: int, executor: ExecutorConfig, render: RenderConfig, shard: ShardConfig, seed: int = 0
) -> dict:
    """Run the four stages into out/{synthesize,filter,render,shard}; returns per-stage seconds,
    accepted assets and views, and the shards' digest."""
    dirs = {name: out / name for name in STAGES}
    timings, cpu = {}, {}

    def timed(name, fn):
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = fn()
        timings[name], cpu[name] = time.perf_counter() - t0, cpu_seconds() - c0
        return result

    timed("synthesize", lambda: synthesize(count, seed, dirs["synthesize"], executor))
    timed("filter", lambda: filter_assets([dirs["synthesize"]], dirs["filter"], FilterConfig(), executor))
    timed("render", lambda: render_assets(dirs["filter"], dirs["render"], render, executor))
    timed("shard", lambda: write_shards(dirs["render"], dirs["shard"], shard, executor))
    stages = {}
    for name in STAGES:
        manifest_dir = dirs[name]
        rows = [r for r in mf.read_manifest(manifest_dir) if r["status"] == "accepted"]
        views = sum(r.get("views", 0) for r in rows) if name in ("render", "shard") else 0
        stages[name] = {
            "seconds": round(timings[name], 3),
            "cpu_seconds": round(cpu[name], 2),
            "assets": len(rows),
            "views": views,
        }
    return {
        "count": count,
        "executor": executor.kind,
        "workers": executor.workers or os.cpu_count(),
        "backend": render.backend,
        "views": render.views,
        "resolution": render.resolution,
        "stages": stages,
        "total_seconds": round(sum(timings.values()), 3),
        "total_cpu_seconds": round(sum(cpu.values()), 2),
        "digest": shard_digest(dirs["shard"]),
    }


def print_table(report: dict) -> None:
    print(
        f"\n{report['count']} DetailVerse assets, {report['views']} views at {report['resolution']}², "
        f"backend {report['backend']}, executor {report['executor']} x{report['workers']}"
    )
    print("| stage | seconds | accepted assets | assets/s | views/s | CPU s | core-s per asset |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in report["stages"].items():
        per_asset = report["count"] if name in ("synthesize", "filter") else report["stages"]["filter"]["assets"]
        views = f"{s['views'] / s['seconds']:.4g}" if s["views"] else "-"
        print(
            f"| {name} | {s['seconds']:.2f} | {s['assets']} | {per_asset / s['seconds']:.4g} | {views} | "
            f"{s['cpu_seconds']:.1f} | {s['cpu_seconds'] / max(per_asset, 1):.3f} |"
        )
    cpu = report["total_cpu_seconds"]
    print(f"| total | {report['total_seconds']:.2f} | | | | {cpu:.1f} | {cpu / max(report['count'], 1):.3f} |")
    print(f"shards digest {report['digest']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000, help="DetailVerse assets, all families in round robin")
    p.add_argument("--out", required=True, help="a new or earlier rebuild's folder (a rerun resumes)")
    p.add_argument("--seed", type=int, default=0)
    add_build_args(p, backend="nvdiffrast")
    p.add_argument("--json", default=None, help="write the report here as JSON too")
    args = p.parse_args(argv)
    executor, render = build_configs(args)
    report = rebuild(Path(args.out), args.count, executor, render, ShardConfig(), args.seed)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
