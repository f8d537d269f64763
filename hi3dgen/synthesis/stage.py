"""The synthesize stage: one asset per (seed, index), fanned out by `run_stage`.

Each asset draws everything from `SeedSequence((seed, index))`, so its GLB bytes depend on nothing
else (not the count, the worker or the executor), and a rerun resumes from the journal.
"""

from __future__ import annotations

import functools
import hashlib
import os
import statistics
from pathlib import Path

import numpy as np

from hi3dgen import io, lineage
from hi3dgen.assets import mesh as am
from hi3dgen.assets.mesh import AssetError, make_asset_id, normalize
from hi3dgen.parallel import ExecutorConfig, run_stage
from hi3dgen.synthesis import csg
from hi3dgen.synthesis.families import FAMILIES, Params

SOURCE = "detailverse"
LIBRARIES = ("manifold3d", "trimesh", "numpy")  # their versions key the journal beside the code


def work_items(count: int, seed: int, names: list[str]) -> list[dict]:
    """Families in round robin over the index, so every family appears."""
    return [
        {
            "asset_id": make_asset_id("dv", f"s{seed}", f"{index:06d}"),
            "source": SOURCE,
            "input_path": f"synth://{names[index % len(names)]}/{seed}/{index}",
            "family": names[index % len(names)],
            "seed": seed,
            "index": index,
        }
        for index in range(count)
    ]


def synthesize_one(item: dict, out_dir: str) -> dict:
    """Generate, normalize and write one asset; returns its manifest row. The row carries the
    filter's metrics of the GLB bytes written (`mesh_metrics`, under `code_key` of the code that
    measured them), so that the filter stage need not load and measure the asset again."""
    params = Params(np.random.default_rng(np.random.SeedSequence((item["seed"], item["index"]))))
    row = {
        "asset_id": item["asset_id"],
        "source": SOURCE,
        "domain": "synthetic",
        "input_path": item["input_path"],
        "generator": item["family"],
        "params": params.values,
    }
    try:
        mesh = normalize(csg.to_asset_mesh(FAMILIES[item["family"]](params)))
    except AssetError as exc:
        return {**row, "status": "rejected", "reason": str(exc)}
    rel = f"assets/{item['asset_id']}.glb"
    data = am.glb_bytes(mesh)
    io.write_bytes(Path(out_dir) / rel, data)
    saved = am.mesh_from_glb(data)  # what a reader of the file gets
    metrics = am.measure(saved)
    return {
        **row,
        "status": "accepted",
        "faces": len(saved.faces),
        "vertices": len(saved.vertices),
        "watertight": metrics["watertight"],
        "sharp_edges": metrics["sharp_edges"],
        "path": rel,
        "sha256": hashlib.sha256(data).hexdigest(),
        "mesh_metrics": {**metrics, "key": lineage.code_key(am.__name__, am.METRICS_LIBRARIES)},
    }


def check_families(names: list[str] | None) -> list[str]:
    names = list(FAMILIES) if not names else list(names)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown DetailVerse families {unknown}; known: {', '.join(FAMILIES)}")
    return names


def synthesize(
    count: int, seed: int, out_dir: str | os.PathLike, executor: ExecutorConfig, families: list[str] | None = None
) -> list[dict]:
    """Write `count` DetailVerse assets to `out_dir/assets/` and their rows to
    `out_dir/manifest.jsonl`; returns the rows."""
    if count < 0 or seed < 0:
        raise ValueError(f"count and seed must be non-negative, got count={count} seed={seed}")
    names = check_families(families)
    config = {"stage": "synthesize", "seed": seed, "families": names, "libraries": lineage.versions(*LIBRARIES)}
    return run_stage(
        "synthesize",
        out_dir,
        work_items(count, seed, names),
        functools.partial(synthesize_one, out_dir=str(out_dir)),
        config=config,
        executor=executor,
        output_dirs=("assets",),
    )


def stats(rows: list[dict]) -> dict:
    """Median sharp edges and watertight share of the accepted assets, overall and per family."""
    ok = [r for r in rows if r["status"] == "accepted"]

    def summary(group: list[dict]) -> dict:
        return {
            "assets": len(group),
            "median_sharp_edges": statistics.median(r["sharp_edges"] for r in group),
            "watertight_share": sum(r["watertight"] for r in group) / len(group),
            "median_faces": statistics.median(r["faces"] for r in group),
        }

    if not ok:
        return {"assets": 0, "families": {}}
    by_family: dict[str, list[dict]] = {}
    for r in ok:
        by_family.setdefault(r["generator"], []).append(r)
    return {**summary(ok), "families": {k: summary(v) for k, v in sorted(by_family.items())}}
