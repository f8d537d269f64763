"""Per-asset quality metrics and the thresholds that accept or reject an asset.

Every input row gets an output row: rejected inputs keep their reason, accepted inputs get metrics
and either pass (their GLB is copied to OUT/assets) or get the first threshold they failed as reason.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import statistics
from pathlib import Path

from hi3dgen import io, lineage
from hi3dgen import manifest as mf
from hi3dgen.assets import mesh as am
from hi3dgen.parallel import ExecutorConfig, run_stage

METRICS_FILE = "metrics.json"


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    min_faces: int = 12
    max_faces: int = 2_000_000
    max_components: int = 1000
    require_watertight: bool = False
    min_sharp_edges: int = 0
    max_aspect: float = 50.0  # longest / shortest bounding-box side
    min_extent: float = 0.01  # shortest side (longest is 1): below it the shape is flat
    min_thickness: float = 0.002  # 3 * volume / area of a watertight shape: below it, thin
    dedupe: bool = True


def verdict(metrics: dict, cfg: FilterConfig) -> str | None:
    """The first failed threshold as `reason: detail`, or None when the asset passes."""
    checks = [
        (metrics["faces"] < cfg.min_faces, "too_few_faces", f"{metrics['faces']} < {cfg.min_faces}"),
        (metrics["faces"] > cfg.max_faces, "too_many_faces", f"{metrics['faces']} > {cfg.max_faces}"),
        (
            metrics["components"] > cfg.max_components,
            "too_many_components",
            f"{metrics['components']} > {cfg.max_components}",
        ),
        (cfg.require_watertight and not metrics["watertight"], "not_watertight", ""),
        (
            metrics["sharp_edges"] < cfg.min_sharp_edges,
            "too_few_sharp_edges",
            f"{metrics['sharp_edges']} < {cfg.min_sharp_edges}",
        ),
        (metrics["min_extent"] < cfg.min_extent, "flat", f"shortest side {metrics['min_extent']:.4f}"),
        (metrics["aspect"] > cfg.max_aspect, "elongated", f"aspect {metrics['aspect']:.1f}"),
        (
            metrics["thickness"] is not None and metrics["thickness"] < cfg.min_thickness,
            "thin",
            f"thickness {metrics['thickness']}",
        ),
    ]
    for failed, reason, detail in checks:
        if failed:
            return f"{reason}: {detail}" if detail else reason
    return None


def _metrics(item: dict) -> dict:
    """`am.measure` of the asset: the upstream row's `mesh_metrics` when the same code measured
    the same bytes (same `code_key`, same sha256), else measured here."""
    data = Path(item["_src"]).read_bytes()
    known = item.get("mesh_metrics") or {}
    if (
        known.get("key") == lineage.code_key(am.__name__, am.METRICS_LIBRARIES)
        and item.get("sha256") == hashlib.sha256(data).hexdigest()
    ):
        return {k: v for k, v in known.items() if k != "key"}
    return am.measure(am.mesh_from_glb(data))


def _filter_one(item: dict, cfg: FilterConfig) -> dict:
    row = {k: v for k, v in item.items() if k not in ("_src", "path", "mesh_metrics")}
    if item["status"] != "accepted":
        return row  # rejected upstream: keeps its reason
    row["input_path"] = item["_src"]
    metrics = _metrics(item)
    row.update(metrics)
    reason = verdict(metrics, cfg)
    if reason:
        return {**row, "status": "rejected", "reason": reason}
    return row


def _mark_duplicates(rows: list[dict]) -> list[dict]:
    """Later (by asset_id) assets with the geometry of an earlier one are rejected."""
    first: dict[str, str] = {}
    out = []
    for row in sorted(rows, key=lambda r: r["asset_id"]):
        h = row.get("geometry_hash")
        if row["status"] == "accepted" and h:
            if h in first:
                row = {**row, "status": "rejected", "reason": f"duplicate: of {first[h]}"}
            else:
                first[h] = row["asset_id"]
        out.append(row)
    return out


def _publish(rows: list[dict], out_dir: Path, dedupe: bool) -> list[dict]:
    """Decide duplicates, then copy each accepted GLB to OUT/assets (only when it changed)."""
    rows = _mark_duplicates(rows) if dedupe else rows
    out = []
    for row in rows:
        if row["status"] == "accepted":
            rel = f"assets/{row['asset_id']}.glb"
            dst = out_dir / rel
            data = Path(row["input_path"]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if not dst.exists() or hashlib.sha256(dst.read_bytes()).hexdigest() != digest:
                io.write_bytes(dst, data)
            row = {**row, "path": rel, "sha256": digest}
        out.append(row)
    return out


def collect_inputs(in_dirs: list[str | os.PathLike]) -> list[dict]:
    """All rows of the input stages' manifests, with the absolute path of each accepted GLB."""
    items = []
    for d in in_dirs:
        for row in mf.read_manifest(d):
            item = dict(row)
            if row["status"] == "accepted":
                item["_src"] = str(Path(d) / row["path"])
            items.append(item)
    return items


def filter_assets(
    in_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    cfg: FilterConfig,
    executor: ExecutorConfig,
    metrics_path: str | os.PathLike | None = None,
) -> list[dict]:
    """Filter the assets of the given stage outputs; the summary goes to `metrics_path`
    (default OUT/metrics.json), the DVC metrics file."""
    items = collect_inputs(in_dirs)
    metrics_path = Path(metrics_path or Path(out_dir) / METRICS_FILE)
    rows = run_stage(
        "filter",
        out_dir,
        items,
        functools.partial(_filter_one, cfg=cfg),
        config={**dataclasses.asdict(cfg), "libraries": lineage.versions(*am.METRICS_LIBRARIES)},
        executor=executor,
        output_dirs=("assets",),
        extra_files=(METRICS_FILE,) if metrics_path == Path(out_dir) / METRICS_FILE else (),
        inputs=tuple(in_dirs),
        finalize=functools.partial(_publish, out_dir=Path(out_dir), dedupe=cfg.dedupe),
    )
    io.write_json(metrics_path, summary_metrics(rows))
    return rows


def summary_metrics(rows: list[dict]) -> dict:
    """The DVC metrics of the filter stage."""
    acc = [r for r in rows if r["status"] == "accepted"]
    summary = mf.summarize(rows)
    summary["accepted_share"] = round(len(acc) / max(len(rows), 1), 4)
    summary["median_sharp_edges"] = statistics.median([r["sharp_edges"] for r in acc]) if acc else 0
    summary["median_faces"] = statistics.median([r["faces"] for r in acc]) if acc else 0
    summary["watertight_share"] = round(sum(r["watertight"] for r in acc) / max(len(acc), 1), 4)
    return summary
