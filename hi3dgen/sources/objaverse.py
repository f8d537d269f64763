"""Ingestion of Objaverse objects through the `objaverse` package (0.1.7).

The package keeps its cache in module-level paths (`BASE_PATH`, `_VERSIONED_PATH`, by default
`~/.objaverse/hf-objaverse-v1`: `object-paths.json.gz`, `glbs/<dir>/<uid>.glb`); `package_cache`
points them at a chosen folder. GLBs already there are used with no network; a missing one is
downloaded by the worker that ingests it, and a failed download or an unknown uid is a rejected
row, never a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import time
from pathlib import Path

import objaverse

from hi3dgen import lineage
from hi3dgen.assets.mesh import make_asset_id
from hi3dgen.parallel import ExecutorConfig, run_stage
from hi3dgen.sources.local import ingest_file, rejected
from hi3dgen.sources.sandbox import Limits

VERSIONED = "hf-objaverse-v1"
INDEX = "object-paths.json.gz"
SOCKET_TIMEOUT_S = 60  # a stalled download fails instead of hanging its worker
ANNOTATIONS = ("name", "license")


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The package's versioned folder inside `cache_dir` (what the package calls BASE_PATH, by
    default ~/.objaverse). A folder that already is a versioned one (it holds the index or glbs/)
    is taken as it is."""
    if cache_dir is None:
        return Path(objaverse._VERSIONED_PATH)
    base = Path(cache_dir).expanduser().resolve()
    if (base / INDEX).exists() or (base / "glbs").is_dir():
        return base
    return base / VERSIONED


@contextlib.contextmanager
def package_cache(root: Path):
    """The `objaverse` module with its cache paths pointed at `root` (and a socket timeout)."""
    saved = objaverse.BASE_PATH, objaverse._VERSIONED_PATH, socket.getdefaulttimeout()
    objaverse.BASE_PATH, objaverse._VERSIONED_PATH = str(root.parent), str(root)
    socket.setdefaulttimeout(SOCKET_TIMEOUT_S)
    try:
        yield objaverse
    finally:
        objaverse.BASE_PATH, objaverse._VERSIONED_PATH = saved[:2]
        socket.setdefaulttimeout(saved[2])


def object_paths(root: Path, download: bool) -> dict[str, str]:
    """uid -> GLB path relative to `root`, from the package's index (the one `load_uids` lists).
    Offline and without the index: the GLBs already in the cache."""
    error: Exception | str = "not downloading"
    if download or (root / INDEX).exists():
        try:
            with package_cache(root) as pkg:
                return pkg._load_object_paths()
        except (OSError, ValueError, EOFError) as exc:  # URLError is an OSError
            error = exc
    cached = {p.stem: p.relative_to(root).as_posix() for p in sorted(root.glob("glbs/*/*.glb"))}
    if not cached:
        raise ValueError(
            f"no Objaverse index at {root / INDEX} ({error}) and no GLBs under {root / 'glbs'}: "
            "connect to the network or fill the cache (see --cache-dir)"
        )
    print(f"[ingest] no Objaverse index ({error}): using the {len(cached)} GLBs in {root}", file=sys.stderr)
    return cached


def annotations(root: Path, uids: list[str], download: bool) -> dict[str, dict]:
    """Name and license per uid where the package has them; none (with a warning) when they
    cannot be had, e.g. offline: the objects are ingested all the same."""
    if not uids or not (download or (root / "metadata").is_dir()):
        return {}
    try:
        with package_cache(root) as pkg:
            meta = pkg.load_annotations(uids)
    except (OSError, ValueError, EOFError, KeyError) as exc:
        print(
            f"[ingest] Objaverse annotations unavailable ({type(exc).__name__}: {exc}); ingesting without them",
            file=sys.stderr,
        )
        return {}
    return {u: {k: m[k] for k in ANNOTATIONS if m.get(k) is not None} for u, m in meta.items()}


def ingest_object(item: dict) -> dict:
    """Work function: download the object into the cache when it is missing, then ingest its GLB
    like a local file."""
    if item["file"] is None:
        return rejected(item, f"missing_uid: {item['uid']} is not in the Objaverse index")
    if not Path(item["file"]).is_file():
        if not item["download"]:
            return rejected(item, f"not_cached: {item['file']} is absent and downloads are off")
        try:
            with package_cache(Path(item["cache"])) as pkg:
                got = pkg.load_objects([item["uid"]])
        except Exception as exc:  # any failure of one download is that object's row
            return rejected(item, f"download_failed: {type(exc).__name__}: {exc}")
        if item["uid"] not in got:
            return rejected(item, f"missing_uid: the package returned no file for {item['uid']}")
    return ingest_file(item)


def read_uids(path: str | os.PathLike) -> list[str]:
    """One uid per line; blank lines and '#' comments are skipped."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def ingest_objaverse(
    out_dir: str | os.PathLike,
    executor: ExecutorConfig,
    limits: Limits = Limits(),
    uids: list[str] | str | os.PathLike | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> list[dict]:
    """Ingest `uids` (a list, or the path of a file with one per line), or the first `limit`
    uids of the index in sorted order, into `out_dir` (assets + manifest); returns the rows."""
    if (uids is None) == (limit is None):
        raise ValueError("give either uids or limit")
    if isinstance(uids, (str, os.PathLike)):
        uids = read_uids(uids)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    root = cache_root(cache_dir)
    paths = object_paths(root, download)
    if uids is None:
        uids = sorted(paths)[:limit]
    uids = list(dict.fromkeys(u.strip().removesuffix(".glb") for u in uids))
    meta = annotations(root, [u for u in uids if u in paths], download)
    out = Path(out_dir).resolve()
    items = []
    for uid in uids:
        file = root / paths[uid] if uid in paths else None
        # An object not in the cache is retried on every run: a failed download may work now.
        state = (
            [file.stat().st_size, file.stat().st_mtime_ns]
            if file is not None and file.is_file()
            else f"absent@{time.time_ns()}"
        )
        items.append(
            {
                "asset_id": make_asset_id("objaverse", uid),
                "source": "objaverse",
                "uid": uid,
                "input_path": None if file is None else str(file),
                "file": None if file is None else str(file),
                "cache_state": state,
                "cache": str(root),
                "download": download,
                "out_dir": str(out),
                "limits": dataclasses.asdict(limits),
                "up_axis": "y",
                **meta.get(uid, {}),
            }
        )
    config = {
        "source": "objaverse",
        "limits": dataclasses.asdict(limits),
        "libraries": lineage.versions("trimesh", "numpy"),
    }
    return run_stage(
        "ingest",
        out,
        items,
        ingest_object,
        config=config,
        executor=executor,
        output_dirs=("assets",),
        inputs=(root,),
    )
