"""Ingestion of a folder of 3D files: every file becomes a normalized asset GLB or a rejected row.

Cheap checks (format, size) run in the worker; everything that parses the file runs in a sandboxed
child (`sandbox.load_isolated`), so a file that hangs, exhausts memory or crashes its loader costs
one row, never the stage.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
from pathlib import Path

from hi3dgen import lineage
from hi3dgen.assets.mesh import make_asset_id
from hi3dgen.parallel import ExecutorConfig, run_stage
from hi3dgen.sources.sandbox import FORMATS, Limits, load_isolated

ROW_KEYS = ("asset_id", "source", "input_path", "uid", "name", "license")
STEM_CHARS = 64  # keeps asset ids (and file names) short for very long source names
HASH_DIGITS = 16  # of the relative path's sha256: 10^7 files collide with odds of about 3e-6


def rejected(item: dict, reason: str) -> dict:
    return {**_row(item), "status": "rejected", "reason": reason}


def _row(item: dict) -> dict:
    return {"domain": "real", **{k: item[k] for k in ROW_KEYS if k in item}}


def ingest_file(item: dict) -> dict:
    """Work function: the file `item["file"]` -> `OUT/assets/<asset_id>.glb` and its manifest row.

    Besides `asset_id`, `source` and `input_path` (the path as the user gave it), the item holds
    `file` (absolute, links not resolved: a glTF's buffers lie beside the name it was given),
    `out_dir`, `limits` (a dict of `Limits`) and `up_axis`; `not_walked` is the reason a folder
    that the walk reached was not entered.
    """
    if "not_walked" in item:
        return rejected(item, item["not_walked"])
    path = Path(item["file"])
    limits = Limits(**item["limits"])
    file_type = _file_type(path)
    if file_type not in FORMATS:
        return rejected(item, f"unsupported_format: '{path.suffix}' is not one of {FORMATS}")
    try:
        stat = path.stat()
    except OSError as exc:
        return rejected(item, _unreadable(path, exc))
    if not path.is_file():
        return rejected(item, "invalid_file: not a regular file")
    size = stat.st_size
    if size == 0:
        return rejected(item, "empty: the file has 0 bytes")
    if size > limits.max_file_mb * 2**20:
        return rejected(item, f"too_large: {size / 2**20:.1f} MB (limit {limits.max_file_mb:g} MB)")
    rel = f"assets/{item['asset_id']}.glb"
    result = load_isolated(str(path), file_type, str(Path(item["out_dir"]) / rel), limits, item["up_axis"])
    if "reason" in result:
        return rejected(item, result["reason"])
    return {**_row(item), "status": "accepted", "path": rel, **result}


def _file_type(path: Path) -> str:
    """The format by the file's own name; a link named without a known suffix (the blobs of a
    content-addressed cache are the other way round) by its target's name."""
    file_type = path.suffix.lower().lstrip(".")
    if file_type not in FORMATS and path.is_symlink():
        return Path(os.path.realpath(path)).suffix.lower().lstrip(".")
    return file_type


def _unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"broken_link: {path} is a loop of symbolic links"
    if path.is_symlink() and exc.errno == errno.ENOENT:
        return f"broken_link: {path} points to {os.readlink(path)}, which does not exist"
    return f"invalid_file: cannot read it ({exc.strerror or exc})"


def find_files(src: Path) -> list[tuple[Path, str | None]]:
    """Every non-folder under `src` (or `src` itself), sorted, each with None, and each folder
    that is not walked with the reason. Links to folders are followed; one that leads back to a
    folder above it (a loop) is not, nor is an unreadable folder. (An output folder overlapping
    `src` is refused by the stage, so none is walked here.)"""
    if not os.path.lexists(src):
        raise FileNotFoundError(f"{src} does not exist: give --path a folder or a 3D file")
    if not src.is_dir():
        return [(src, None)]
    found = []
    stack = [(src, frozenset())]
    while stack:
        folder, above = stack.pop()
        try:
            st = folder.stat()
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            found.append((folder, f"unreadable_folder: {folder}: {exc.strerror or exc}"))
            continue
        above = above | {(st.st_dev, st.st_ino)}
        for entry in entries:
            path = Path(entry.path)
            if not _is_dir(entry):
                found.append((path, None))
            elif _inode(entry) in above:
                found.append(
                    (
                        path,
                        f"folder_loop: {path} leads back to "
                        f"{os.path.realpath(path)}, a folder above it; not walked again",
                    )
                )
            else:
                stack.append((path, above))
    return sorted(found)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; a broken link is no folder
    except OSError:
        return False


def _inode(entry: os.DirEntry) -> tuple[int, int]:
    st = entry.stat()
    return st.st_dev, st.st_ino


def asset_ids(rels: list[str], digits: int = HASH_DIGITS) -> list[str]:
    """Readable, unique asset ids for relative paths: `local-<stem>-<hash of the path>`; should two
    paths still map to one id, the later one (in the given order) gets a `-2`, `-3`, ... suffix."""
    ids, seen = [], set()
    for rel in rels:
        stem = os.path.splitext(os.path.basename(rel))[0][:STEM_CHARS]
        base = make_asset_id("local", stem, hashlib.sha256(rel.encode()).hexdigest()[:digits])
        asset_id, n = base, 1
        while asset_id in seen:
            n += 1
            asset_id = f"{base}-{n}"
        seen.add(asset_id)
        ids.append(asset_id)
    return ids


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
    found = find_files(src)
    rels = [f.relative_to(base).as_posix() for f, _ in found]
    items = []
    for (f, not_walked), asset_id in zip(found, asset_ids(rels)):
        stat = f.stat() if f.exists() else f.lstat()  # a broken link still gets its row
        items.append(
            {
                "asset_id": asset_id,
                "source": "local",
                "input_path": str(f),
                "file": os.path.abspath(f),
                "size_mtime": [stat.st_size, stat.st_mtime_ns],  # a changed file is redone on rerun
                "out_dir": str(out),
                "limits": dataclasses.asdict(limits),
                "up_axis": up_axis,
                **({"not_walked": not_walked} if not_walked else {}),
            }
        )
    config = {
        "source": "local",
        "limits": dataclasses.asdict(limits),
        "up_axis": up_axis,
        "libraries": lineage.versions("trimesh", "numpy"),
    }
    return run_stage(
        "ingest",
        out,
        items,
        ingest_file,
        config=config,
        executor=executor,
        output_dirs=("assets",),
        inputs=(src,),
    )
