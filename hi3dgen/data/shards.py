"""WebDataset shards for training, written from a render folder, split train/val by asset.

Layout of OUT/:
  views/{train,val}-{i:06d}.tar   one sample per asset view, key `<asset_id>_<view:03d>`: normal.png,
                                  mask.png, depth.npy.gz, rgb.png (when rendered), camera.json,
                                  meta.json, byte for byte as the render stage wrote them
  shapes/{train,val}-{i:06d}.tar  one sample per asset, key `<asset_id>`: surface.npy (N, 6) float32
                                  points and normals; sharp.npy (K, 6) the same on sharp edges (K = 0
                                  without any); sdf.npy (M, 4) float32 xyz and signed distance
                                  (negative inside; near-surface rows first, one block per sigma, then
                                  near sharp edges, then uniform rows); normals.npy (V, H, W, 3) uint16 as stored in
                                  normal.png; masks.npy (V, H, W) bool; cameras.json; meta.json
  shards.json                     per set and split: shards with sample counts, per-domain counts and
                                  sha256; totals; the config
  manifest.jsonl                  one row per render row; accepted rows name their split
  .cache/                         shape geometry per asset, keyed by GLB sha256, geometry config and
                                  the digest of the code that computes it (`hi3dgen.lineage`)

An asset is sharded whole or not at all: if its views are incomplete or its SDF fails it is a
rejected row and none of its views enter the view shards, so both shard sets hold the same assets.

Determinism: samples sorted by (domain, asset_id, view), members sorted, fixed tar mtime, owner and
mode, seeds derived from asset_id, so an unchanged input gives byte-identical tars. Shards are
rewritten on every run (copying bytes is cheap; the SDF is cached), atomically, one Ray task per
shard: the layout is planned first, so parallel writing gives the same bytes. Ray tasks read the
render folder and write OUT by path: on a multi-node cluster both must be on a shared filesystem.
A failed SDF is retried on the next run (it is not cached).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io as _io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from hi3dgen import io, lineage
from hi3dgen import manifest as mf
from hi3dgen.data import DOMAINS, codec
from hi3dgen.parallel import ExecutorConfig, fan_out

SPLITS = ("train", "val")
SETS = ("views", "shapes")
INDEX = "shards.json"
CACHE = ".cache"
TAR_MTIME = 1577836800  # 2020-01-01: any fixed value makes tars reproducible
TAR_OWNER = "hi3dgen"
VIEW_MEMBERS = ("normal.png", "mask.png", "depth.npy.gz", "camera.json", "meta.json")
OPTIONAL_VIEW_MEMBERS = ("rgb.png",)
MESH_MEMBERS = ("mesh_vertices.npy", "mesh_faces.npy")  # a val shape sample's ground-truth mesh
VIEW_FILE_RE = re.compile(r"^(\d{3})\.(.+)$")
SHARD_RE = re.compile(r"^(views|shapes)/(train|val)-\d{6}\.tar$")
CACHE_RE = re.compile(r"^\.cache/[A-Za-z0-9_-]+-[0-9a-f]{16}-[0-9a-f]{16}\.npz$")
GEOMETRY_LIBRARIES = ("trimesh", "numpy", "scipy", "libigl")  # their versions key the cache beside the code


@dataclasses.dataclass(frozen=True)
class ShardConfig:
    """How the render folder becomes shards. Geometry fields (`surface_points` .. `seed`) key the
    SDF cache; the rest only re-packs."""

    val_fraction: float = 0.05
    samples_per_shard: int = 512  # view samples per view shard
    shapes_per_shard: int = 64  # asset samples per shape shard
    shape_views: int = 4  # the first V rendered views go into the shape sample
    surface_points: int = 8192
    sdf_points: int = 16384
    uniform_fraction: float = 0.5  # share of SDF samples uniform in [-0.55, 0.55]^3
    near_sigmas: tuple[float, ...] = (0.005, 0.05)  # gaussian offsets of near-surface samples
    sharp_points: int = 8192  # surface points on sharp edges (the encoder's share: ShapeVAEConfig.sharp_fraction)
    sharp_angle: float = 15.0  # degrees: a dihedral angle above this makes an edge sharp (Dora)
    sharp_sdf_fraction: float = 0.125  # share of SDF samples near sharp edges (Hunyuan3D-2.1)
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if min(self.samples_per_shard, self.shapes_per_shard, self.shape_views) < 1:
            raise ValueError("samples_per_shard, shapes_per_shard and shape_views must be >= 1")
        if not self.near_sigmas and self.uniform_fraction < 1.0:
            raise ValueError("near_sigmas is empty: set uniform_fraction to 1.0")

    def geometry(self) -> dict:
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k
            in (
                "surface_points",
                "sdf_points",
                "uniform_fraction",
                "near_sigmas",
                "sharp_points",
                "sharp_angle",
                "sharp_sdf_fraction",
                "seed",
            )
        }

    def cache_key(self) -> str:
        """What a cached shape geometry depends on besides its mesh: the geometry fields, the code
        of `compute_shape` (this module and what it imports) and its libraries' versions."""
        return mf.fingerprint({**self.geometry(), "code": lineage.code_key(__name__, GEOMETRY_LIBRARIES)})


def _hash_unit(text: str) -> float:
    """A uniform number in [0, 1) that depends on `text` only."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def assign_splits(asset_ids: list[str], val_fraction: float) -> dict[str, str]:
    """`val` where the asset_id's hash falls below val_fraction: an asset keeps its split when
    others are added or removed. A set too small to draw any val asset by hash (while
    val_fraction > 0) gives its lowest-hash asset to val, so that validation has data."""
    split = {a: "val" if _hash_unit(a) < val_fraction else "train" for a in asset_ids}
    if val_fraction > 0 and len(asset_ids) > 1 and "val" not in split.values():
        split[min(asset_ids, key=_hash_unit)] = "val"
    return split


class _Rejected(Exception):
    """An asset that cannot be sharded; str(self) is the manifest reason."""


def list_views(view_dir: Path) -> list[dict[str, Path]]:
    """Member files per view, in view order; raises _Rejected when a view lacks a member."""
    if not view_dir.is_dir():
        raise _Rejected(f"missing_views: no folder {view_dir}")
    views: dict[int, dict[str, Path]] = {}
    for p in view_dir.iterdir():
        m = VIEW_FILE_RE.match(p.name)
        if m and m.group(2) in VIEW_MEMBERS + OPTIONAL_VIEW_MEMBERS:
            views.setdefault(int(m.group(1)), {})[m.group(2)] = p
    if not views:
        raise _Rejected(f"missing_views: no view files in {view_dir}")
    for v in sorted(views):
        missing = [k for k in VIEW_MEMBERS if k not in views[v]]
        if missing:
            raise _Rejected(f"incomplete_view: view {v:03d} lacks {', '.join(missing)}")
    if sorted(views) != list(range(len(views))):
        raise _Rejected(f"incomplete_view: view numbers {sorted(views)} are not 0..{len(views) - 1}")
    return [views[v] for v in range(len(views))]


def compute_shape(item: dict) -> dict:
    """Ray task: the shape geometry of one asset, written to its cache file (atomically)."""
    from hi3dgen.assets.mesh import load_glb
    from hi3dgen.geometry.sdf import shape_samples

    geo = item["geometry"]
    out = shape_samples(
        load_glb(item["input_path"]),
        surface_points=geo["surface_points"],
        sdf_points=geo["sdf_points"],
        near_sigmas=tuple(geo["near_sigmas"]),
        uniform_fraction=geo["uniform_fraction"],
        sharp_points=geo["sharp_points"],
        sharp_angle=geo["sharp_angle"],
        sharp_sdf_fraction=geo["sharp_sdf_fraction"],
        seed=item["seed"],
    )
    stats = {k: out[k] for k in ("counts", "inside_fraction", "faces", "watertight")}
    mesh = out["mesh"]
    buf = _io.BytesIO()
    np.savez(
        buf,
        surface=out["surface"],
        sharp=out["sharp"],
        sdf=out["sdf"],
        mesh_vertices=np.asarray(mesh.vertices, np.float32),
        mesh_faces=np.asarray(mesh.faces, np.int32),
        stats=np.array(json.dumps(stats)),
    )
    io.write_bytes(item["cache"], buf.getvalue())
    return stats


def _load_cache(path: Path, arrays: bool = True) -> dict:
    with np.load(path, allow_pickle=False) as z:
        out = {"stats": json.loads(str(z["stats"]))}
        if arrays:
            out.update({k: z[k] for k in ("surface", "sharp", "sdf", "mesh_vertices", "mesh_faces")})
        return out


class _HashingFile:
    """Write-through file wrapper that hashes what passes, so a shard is not read back."""

    def __init__(self, f):
        self.f, self.h, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.h.update(data)
        self.size += len(data)
        return self.f.write(data)


def write_tar(path: Path, samples) -> dict:
    """Write `{"__key__": ..., member: bytes}` samples as one reproducible tar, atomically; returns
    its size and sha256."""
    import webdataset as wds  # imports torch: not at CLI start-up

    with io.atomic_path(path) as tmp, open(tmp, "wb") as f:
        hashing = _HashingFile(f)
        writer = wds.TarWriter(hashing, user=TAR_OWNER, group=TAR_OWNER, encoder=False, mtime=TAR_MTIME)
        for sample in samples:
            writer.write(sample)
        writer.close()
    return {"bytes": hashing.size, "sha256": hashing.h.hexdigest()}


def _view_sample(unit: dict) -> dict:
    return {"__key__": unit["key"], **{k: Path(p).read_bytes() for k, p in unit["files"].items()}}


def _shape_sample(asset: dict) -> dict:
    geo = _load_cache(asset["cache"])
    views = asset["views"]
    meta = {
        "asset_id": asset["asset_id"],
        "source": asset["source"],
        "domain": asset["domain"],
        "glb_sha256": asset["glb_sha256"],
        "seed": asset["seed"],
        "views": list(range(len(views))),
        "surface_points": len(geo["surface"]),
        "sharp_points": len(geo["sharp"]),
        "sdf_near_points": geo["stats"]["counts"]["near"],
        "sdf_sharp_points": geo["stats"]["counts"]["sharp"],
        "sdf_uniform_points": geo["stats"]["counts"]["uniform"],
        **{k: geo["stats"][k] for k in ("inside_fraction", "faces", "watertight")},
    }
    return {
        "__key__": asset["asset_id"],
        "surface.npy": codec.encode_npy(geo["surface"]),
        "sharp.npy": codec.encode_npy(geo["sharp"]),
        "sdf.npy": codec.encode_npy(geo["sdf"]),
        "normals.npy": codec.encode_npy(
            np.stack([codec.decode_normal_raw(f["normal.png"].read_bytes()) for f in views])
        ),
        "masks.npy": codec.encode_npy(np.stack([codec.decode_mask(f["mask.png"].read_bytes()) for f in views])),
        "cameras.json": codec.encode_json([codec.decode_json(f["camera.json"].read_bytes()) for f in views]),
        "meta.json": codec.encode_json(meta),
        **({m: codec.encode_npy(geo[m.removesuffix(".npy")]) for m in MESH_MEMBERS} if asset["mesh"] else {}),
    }


def write_shard(task: dict) -> dict:
    """Ray task: one shard from its planned units (plain data, so tasks run anywhere)."""
    make = _view_sample if task["set"] == "views" else _shape_sample
    return write_tar(Path(task["out"]), (make(u) for u in task["units"]))


def _plan(out_dir: Path, kept: list[dict], split: dict, config: ShardConfig) -> list[dict]:
    """Every shard to write, with its units in order: the whole layout is fixed before writing,
    so shards can be written in parallel and still come out the same."""
    tasks = []
    for name in SETS:
        for sp in SPLITS:
            mine = [a for a in kept if split[a["asset_id"]] == sp]
            if name == "views":
                per_shard = config.samples_per_shard
                units = [
                    {
                        "key": f"{a['asset_id']}_{v:03d}",
                        "asset_id": a["asset_id"],
                        "domain": a["domain"],
                        "files": {k: str(p) for k, p in files.items()},
                    }
                    for a in mine
                    for v, files in enumerate(a["views"])
                ]
            else:
                per_shard = config.shapes_per_shard
                units = [
                    {
                        **{k: a[k] for k in ("asset_id", "source", "domain", "glb_sha256", "seed", "cache")},
                        "views": a["views"][: config.shape_views],
                        "mesh": sp == "val",  # the ground truth evaluation scores against
                    }
                    for a in mine
                ]
            for i in range(0, len(units), per_shard):
                rel = f"{name}/{sp}-{i // per_shard:06d}.tar"
                tasks.append(
                    {
                        "set": name,
                        "split": sp,
                        "path": rel,
                        "out": str(out_dir / rel),
                        "units": units[i : i + per_shard],
                    }
                )
    return tasks


def write_shards(
    render_dir: str | os.PathLike, out_dir: str | os.PathLike, config: ShardConfig, executor: ExecutorConfig
) -> dict:
    """Shard a render folder (see the module docstring); returns the shard index (shards.json)."""
    t0 = time.monotonic()
    render_dir = Path(render_dir)
    owned = {INDEX, mf.MANIFEST}
    out_dir = io.claim_dir(
        out_dir,
        "shard",
        lambda rel: rel in owned or bool(SHARD_RE.match(rel) or CACHE_RE.match(rel)),
        inputs=(render_dir,),
    )
    io.remove_temp_files(out_dir)
    rows, assets = _collect(render_dir, out_dir, config)
    kept = _shape_geometry(assets, rows, config, executor, out_dir / CACHE)
    split = assign_splits([a["asset_id"] for a in kept], config.val_fraction)
    kept.sort(key=lambda a: (a["domain"], a["asset_id"]))
    for a in kept:
        stats = _load_cache(a["cache"], arrays=False)["stats"]
        rows[a["asset_id"]] = {
            **{k: a[k] for k in ("asset_id", "source", "domain", "input_path", "glb_sha256")},
            "status": "accepted",
            "split": split[a["asset_id"]],
            "views": len(a["views"]),
            **{k: stats[k] for k in ("inside_fraction", "faces", "watertight")},
        }
    tasks = _plan(out_dir, kept, split, config)
    written = {}
    for task, ok, result in fan_out(write_shard, tasks, executor, desc="shard write"):
        if not ok:
            raise RuntimeError(f"writing {task['out']} failed: {result}")
        written[task["path"]] = result
    for name in SETS:
        for p in (out_dir / name).glob("*.tar") if (out_dir / name).exists() else []:
            if f"{name}/{p.name}" not in written:
                p.unlink()
    ordered = [rows[k] for k in sorted(rows)]
    index = shard_index(dataclasses.asdict(config), tasks, written, mf.summarize(ordered))
    io.write_json(out_dir / INDEX, index)
    mf.write_manifest(out_dir, ordered)
    index["seconds"] = round(time.monotonic() - t0, 2)
    print_report(index)
    return index


def _collect(render_dir: Path, out_dir: Path, config: ShardConfig) -> tuple[dict, list[dict]]:
    """Rejected rows (by the render stage or for incomplete views) and the assets to shard."""
    geo_fp = config.cache_key()
    rows, assets = {}, []
    for row in mf.read_manifest(render_dir):
        base = {
            "asset_id": row["asset_id"],
            "source": row.get("source", "unknown"),
            "domain": row.get("domain"),
            "input_path": row.get("input_path"),
        }
        if row.get("status") != "accepted":
            rows[row["asset_id"]] = {**base, "status": "rejected", "reason": row.get("reason") or "rejected_by_render"}
            continue
        try:
            views = list_views(render_dir / row.get("dir", f"views/{row['asset_id']}"))
            if len(views) < config.shape_views:
                raise _Rejected(f"too_few_views: {len(views)} < shape_views {config.shape_views}")
            if base["domain"] not in DOMAINS:
                base["domain"] = codec.decode_json(views[0]["meta.json"].read_bytes()).get("domain")
            if base["domain"] not in DOMAINS:
                raise _Rejected(f"bad_domain: {base['domain']!r} is neither real nor synthetic")
            if not base["input_path"] or not Path(base["input_path"]).is_file():
                raise _Rejected(f"missing_mesh: {base['input_path']}")
        except _Rejected as exc:
            rows[row["asset_id"]] = {**base, "status": "rejected", "reason": str(exc)}
            continue
        sha = io.sha256_file(base["input_path"])
        seed = mf.asset_seed(config.seed, row["asset_id"])
        assets.append(
            {
                **base,
                "views": views,
                "glb_sha256": sha,
                "seed": seed,
                "cache": out_dir / CACHE / f"{row['asset_id']}-{sha[:16]}-{geo_fp}.npz",
            }
        )
    return rows, assets


def _shape_geometry(
    assets: list[dict], rows: dict, config: ShardConfig, executor: ExecutorConfig, cache_dir: Path
) -> list[dict]:
    """Compute the missing cache entries; assets whose SDF fails become rejected rows. Returns
    the assets kept, and drops cache entries no asset uses any more."""
    todo = [
        {
            "asset_id": a["asset_id"],
            "source": a["source"],
            "input_path": a["input_path"],
            "seed": a["seed"],
            "geometry": config.geometry(),
            "cache": str(a["cache"]),
        }
        for a in assets
        if not a["cache"].exists()
    ]
    if len(todo) < len(assets):
        print(f"[shard] SDF cached for {len(assets) - len(todo)} assets, {len(todo)} to compute", file=sys.stderr)
    failed = {
        item["asset_id"]: result
        for item, ok, result in fan_out(compute_shape, todo, executor, desc="shard sdf")
        if not ok
    }
    kept = []
    for a in assets:
        if a["asset_id"] in failed:
            rows[a["asset_id"]] = {k: a[k] for k in ("asset_id", "source", "domain", "input_path")}
            rows[a["asset_id"]].update(status="rejected", reason=f"sdf_failed: {failed[a['asset_id']]}")
        else:
            kept.append(a)
    used = {a["cache"].name for a in kept}
    for p in cache_dir.glob("*.npz") if cache_dir.exists() else []:
        if p.name not in used:
            p.unlink()
    return kept


def shard_index(config: dict, tasks: list[dict], written: dict, summary: dict) -> dict:
    """The content of shards.json (no timings: it must be deterministic) from the shards written:
    `tasks` (set, split, path and the units, each with its asset_id and domain), `written` (path ->
    bytes and sha256) and the manifest's summary. Every writer of shards (this stage, import-pairs)
    makes its index here."""
    sets = {
        name: {
            sp: {
                "assets": len(
                    {u["asset_id"] for t in tasks if (t["set"], t["split"]) == (name, sp) for u in t["units"]}
                ),
                "samples": 0,
                "shards": [],
            }
            for sp in SPLITS
        }
        for name in SETS
    }
    for task in tasks:
        domains: dict[str, int] = {}
        for unit in task["units"]:
            domains[unit["domain"]] = domains.get(unit["domain"], 0) + 1
        entry = sets[task["set"]][task["split"]]
        entry["samples"] += len(task["units"])
        entry["shards"].append(
            {"path": task["path"], "samples": len(task["units"]), "domains": domains, **written[task["path"]]}
        )
    totals = {k: summary[k] for k in ("accepted", "rejected", "rejected_by_reason")}
    totals.update(
        assets=summary["total"],
        shards=len(written),
        **{f"{name}_samples": sum(sets[name][sp]["samples"] for sp in SPLITS) for name in SETS},
    )
    return {"format": 1, "config": config, "sets": sets, "totals": totals}


def print_report(index: dict) -> None:
    totals = index["totals"]
    print(
        f"[shard] {totals['assets']} assets: {totals['accepted']} accepted, {totals['rejected']} "
        f"rejected; {totals['shards']} shards in {index.get('seconds', 0):.1f}s",
        flush=True,
    )
    for reason, n in totals["rejected_by_reason"].items():
        print(f"[shard]   rejected {n} x {reason}", flush=True)
    for sp in SPLITS:
        views, shapes = index["sets"]["views"][sp], index["sets"]["shapes"][sp]
        print(
            f"[shard] {sp}: {views['assets']} assets, {views['samples']} views in "
            f"{len(views['shards'])} shards, {shapes['samples']} shapes in "
            f"{len(shapes['shards'])} shards",
            flush=True,
        )
