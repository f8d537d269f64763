"""Views per second of the data path on DetailVerse assets, per stage: the backend's render alone
(all views of each asset, host arrays, nothing encoded), the render stage (render, encode every
member of the view sample, write the view folders), the shard stage's packing of view and shape
shards, and render -> shard end to end. The SDF samples of the shape shards are timed apart (a
stage of their own in the shard step, cached across runs), and the shard stage runs twice: the
second run must write byte-identical shards.

    python bench/data.py --assets 64 --backend embree --workers 2 --resolution 512   # CPU machine
    python bench/data.py --assets 320 --backend nvdiffrast --views 12                # GPU machine

Synthesis and filtering of the assets are set-up, not timed here (bench/rebuild.py times them).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.rebuild import add_build_args, build_configs, shard_digest
from hi3dgen import manifest as mf
from hi3dgen.assets import mesh as am
from hi3dgen.data.shards import ShardConfig, write_shards
from hi3dgen.filtering.filter import FilterConfig, filter_assets
from hi3dgen.parallel import fan_out
from hi3dgen.render.stage import RenderConfig, render_assets
from hi3dgen.synthesis import synthesize


def render_only(item: dict, cfg: RenderConfig) -> int:
    """The render stage's work up to the backend's host arrays; returns the views rendered."""
    mesh = am.clean(am.load_glb(item["path"]))
    views = cfg.backend_instance().render(mesh, cfg.cameras(item["asset_id"]), rgb=cfg.rgb)
    return len(views)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=32, help="DetailVerse assets, all families in round robin")
    add_build_args(p, backend="embree")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    executor, cfg = build_configs(args)
    with tempfile.TemporaryDirectory(prefix="hi3dgen-data-") as tmp:
        out = Path(args.out or tmp)
        synthesize(args.assets, 0, out / "synthesize", executor)
        filter_assets([out / "synthesize"], out / "filter", FilterConfig(), executor)
        accepted = [r for r in mf.read_manifest(out / "filter") if r["status"] == "accepted"]
        items = [{"asset_id": r["asset_id"], "path": str(out / "filter" / r["path"])} for r in accepted]
        views = len(items) * cfg.views
        cfg.backend_instance()  # not timed: builds nvdiffrast's CUDA plugin on a machine's first run
        rows = {}
        results, rows["render alone"] = timed(
            lambda: list(fan_out(functools.partial(render_only, cfg=cfg), items, executor, "render alone"))
        )
        failed = [(it["asset_id"], r) for it, ok, r in results if not ok]
        if failed:
            raise RuntimeError(f"render alone failed: {failed[:3]}")
        _, rows["render stage"] = timed(lambda: render_assets(out / "filter", out / "render", cfg, executor))
        _, first = timed(lambda: write_shards(out / "render", out / "shard", ShardConfig(), executor))
        digest = shard_digest(out / "shard")
        _, rows["shard packing"] = timed(lambda: write_shards(out / "render", out / "shard", ShardConfig(), executor))
        same = shard_digest(out / "shard") == digest
        rows["shard SDF samples"] = first - rows["shard packing"]
        rows["render -> shard (no SDF)"] = rows["render stage"] + rows["shard packing"]
        rows["render -> shard (with SDF)"] = rows["render stage"] + first
    print(
        f"\n{len(items)} DetailVerse assets x {cfg.views} views at {cfg.resolution}², backend {cfg.backend}, "
        f"executor {executor.kind} x{executor.workers or os.cpu_count()}; shards byte-identical on rerun: {same}"
    )
    print("| stage | seconds | views/s |")
    print("|---|---:|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {views / seconds:.4g} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
