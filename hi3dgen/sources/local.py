"""Ingestion of a folder of 3D files: every file becomes a normalized asset GLB or a rejected row.

Cheap checks (format, size) run in the worker; everything that parses the file runs in a sandboxed
child (`sandbox.load_isolated`), so a file that hangs, exhausts memory or crashes its loader costs
one row, never the stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from hi3dgen import lineage
from hi3dgen.assets.mesh import make_asset_id
from hi3dgen.parallel import ExecutorConfig, run_stage
from hi3dgen.sources.sandbox import FORMATS, Limits, load_isolated

ROW_KEYS = ("asset_id", "source", "input_path", "uid", "name", "license")
STEM_CHARS = 64  # keeps asset ids (and file names) short for very long source names


def rejected(item: dict, reason: str) -> dict:
    return {**_row(item), "status": "rejected", "reason": reason}


def _row(item: dict) -> dict:
    return {"domain": "real", **{k: item[k] for k in ROW_KEYS if k in item}}


def ingest_file(item: dict) -> dict:
    """Work function: the file `item["file"]` -> `OUT/assets/<asset_id>.glb` and its manifest row.

    Besides `asset_id`, `source` and `input_path` (the path as the user gave it), the item holds
    `file` (absolute), `out_dir`, `limits` (a dict of `Limits`) and `up_axis`.
    """
    path = Path(item["file"])
    limits = Limits(**item["limits"])
    file_type = path.suffix.lower().lstrip(".")
    if file_type not in FORMATS:
        return rejected(item, f"unsupported_format: '{path.suffix}' is not one of {FORMATS}")
    if not path.is_file():
        return rejected(item, "invalid_file: not a regular file (or it vanished)")
    size = path.stat().st_size
    if size == 0:
        return rejected(item, "empty: the file has 0 bytes")
    if size > limits.max_file_mb * 2**20:
        return rejected(item, f"too_large: {size / 2**20:.1f} MB (limit {limits.max_file_mb:g} MB)")
    rel = f"assets/{item['asset_id']}.glb"
    result = load_isolated(
        str(path), file_type, str(Path(item["out_dir"]) / rel), limits, item["up_axis"]
    )
    if "reason" in result:
        return rejected(item, result["reason"])
    return {**_row(item), "status": "accepted", "path": rel, **result}


def find_files(src: Path, skip: Path | None = None) -> list[Path]:
    """Every non-directory under `src` (or `src` itself), sorted, not following directory links,
    leaving out `skip` (an output folder inside `src` must not be ingested on a rerun)."""
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist: give --path a folder or a 3D file")
    if not src.is_dir():
        return [src]
    found = []
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if skip is None or Path(folder, d).resolve() != skip)
        found.extend(Path(folder, f) for f in files)
    return sorted(found)


def ingest_local(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    executor: ExecutorConfig,
    limits: Limits = Limits(),
    up_axis: str = "y",
) -> list[dict]:
    """Ingest every file under `path` into `out_dir` (assets + manifest); returns the rows.

    `up_axis="z"` turns Z-up sources (common for STL and scans) to the Asset contract's +Y up.
    """
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', not {up_axis!r}")
    src, out = Path(path), Path(out_dir).resolve()
    base = src if src.is_dir() else src.parent
    items = []
    for f in find_files(src, skip=out):
        rel = f.relative_to(base).as_posix()
        stat = f.stat() if f.exists() else f.lstat()  # a dangling link still gets its row
        items.append({
            "asset_id": make_asset_id(
                "local", f.stem[:STEM_CHARS], hashlib.sha1(rel.encode()).hexdigest()[:8]
            ),
            "source": "local",
            "input_path": str(f),
            "file": str(f.resolve()),
            "size_mtime": [stat.st_size, stat.st_mtime_ns],  # a changed file is redone on rerun
            "out_dir": str(out),
            "limits": dataclasses.asdict(limits),
            "up_axis": up_axis,
        })
    config = {"source": "local", "limits": dataclasses.asdict(limits), "up_axis": up_axis,
              "libraries": lineage.versions("trimesh", "numpy")}
    return run_stage(
        "ingest", out, items, ingest_file, config=config, executor=executor, output_dirs=("assets",),
        inputs=(src,),
    )
