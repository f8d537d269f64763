"""`hi3dgen import-pairs`: image / normal-map pairs (e.g. exports of indoor-scene datasets) become
view shards of one domain, so NiRNE's stage 1 can train on a user's real-domain set.

Pairs carry no camera and no depth: `camera.json` holds an assumed pinhole camera (`fov_deg`) and
`depth.npy.gz` zeros, and `meta.json` says so (`camera: assumed`, `depth: none`). Every image gets a
manifest row; a pair that cannot be read is a rejected row, not a failed import.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import numpy as np

import hi3dgen
from hi3dgen import io
from hi3dgen import manifest as mf
from hi3dgen.data import DOMAINS, codec, shards
from hi3dgen.images import read_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
NORMAL_SUFFIXES = (".normal", "_normal", "_normals", "")
CONVENTIONS = ("opengl", "opencv")


@dataclasses.dataclass(frozen=True)
class PairsConfig:
    domain: str = "real"
    convention: str = "opengl"  # opencv normals (+Y down, +Z forward) are flipped to OpenGL
    val_fraction: float = 0.05
    samples_per_shard: int = 512
    fov_deg: float = 60.0  # horizontal field of view of the assumed camera

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be real or synthetic, not {self.domain!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, not {self.convention!r}")


def read_normal_map(path: Path, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """A normal map file -> (H, W, 3) unit normals (OpenGL camera) and where they are valid.
    16-bit PNG: the view-sample encoding; 8-bit PNG: (n * 0.5 + 0.5) * 255; .npy: floats in [-1, 1]."""
    if path.suffix == ".npy":
        n = np.load(path).astype(np.float32)
    else:
        data = path.read_bytes()
        try:
            n = codec.decode_normal(data)
        except ValueError:
            n = codec.decode_rgb(data).astype(np.float32) / 255.0 * 2.0 - 1.0
    if n.ndim != 3 or n.shape[2] != 3:
        raise ValueError(f"normal map of shape {n.shape}, need (H, W, 3)")
    norm = np.linalg.norm(n, axis=-1)
    valid = norm > 0.5
    n = np.where(valid[..., None], n / np.maximum(norm, 1e-6)[..., None], 0).astype(np.float32)
    if convention == "opencv":
        n[..., 1:] *= -1
    return n, valid


def find_pairs(images: Path, normals: Path) -> list[tuple[str, Path, Path | None]]:
    """(asset_id, image, normal map or None) per image, matched by file stem (the normal map may
    add `.normal`, `_normal` or `_normals`); asset ids are the stems made dot-free."""
    if not images.is_dir() or not normals.is_dir():
        raise FileNotFoundError(f"{images if not images.is_dir() else normals} is not a folder")
    by_stem = {p.stem: p for p in sorted(normals.iterdir()) if p.suffix in (".png", ".npy")}
    out = []
    for img in sorted(images.iterdir()):
        if img.suffix.lower() not in IMAGE_EXTS:
            continue
        match = next((by_stem[img.stem + s] for s in NORMAL_SUFFIXES if img.stem + s in by_stem), None)
        out.append((re.sub(r"[^A-Za-z0-9_-]", "_", img.stem), img, match))
    return out


def pair_sample(asset_id: str, image: Path, normal_path: Path, cfg: PairsConfig) -> dict:
    """The view sample (members as bytes) of one pair; ValueError says what is wrong with it."""
    rgb, fg = read_image(image)
    normal, valid = read_normal_map(normal_path, cfg.convention)
    if normal.shape[:2] != rgb.shape[:2]:
        raise ValueError(
            f"size_mismatch: image {rgb.shape[1]}x{rgb.shape[0]}, normals {normal.shape[1]}x{normal.shape[0]}"
        )
    mask = valid & fg
    if not mask.any():
        raise ValueError("empty_mask: no pixel has both a normal and an opaque image")
    h, w = mask.shape
    f = 0.5 * w / math.tan(math.radians(cfg.fov_deg) / 2)
    camera = {"K": [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], "c2w": np.eye(4).tolist(), "width": w, "height": h}
    meta = {
        "asset_id": asset_id,
        "view": 0,
        "source": "pairs",
        "domain": cfg.domain,
        "backend": "import-pairs",
        "backend_version": f"hi3dgen {hi3dgen.__version__}",
        "camera": "assumed",
        "depth": "none",
        "image": image.name,
    }
    return {
        "__key__": f"{asset_id}_000",
        "normal.png": codec.encode_normal(normal, mask),
        "mask.png": codec.encode_mask(mask),
        "depth.npy.gz": codec.encode_depth(np.zeros((h, w), np.float32)),
        "rgb.png": codec.encode_rgb((rgb * 255).round().astype(np.uint8)),
        "camera.json": codec.encode_json(camera),
        "meta.json": codec.encode_json(meta),
    }


def import_pairs(
    images: str | os.PathLike, normals: str | os.PathLike, out: str | os.PathLike, cfg: PairsConfig
) -> dict:
    """Write OUT/views/{train,val}-*.tar, OUT/shards.json and OUT/manifest.jsonl; returns the index."""
    owned = {shards.INDEX, mf.MANIFEST}
    out = io.claim_dir(
        out, "import-pairs", lambda rel: rel in owned or bool(shards.SHARD_RE.match(rel)), inputs=(images, normals)
    )
    io.remove_temp_files(out)
    rows, samples = {}, {}
    for asset_id, image, normal in find_pairs(Path(images), Path(normals)):
        row = {"asset_id": asset_id, "source": "pairs", "domain": cfg.domain, "input_path": str(image)}
        try:
            if asset_id in rows:
                raise ValueError(f"duplicate_id: another image also maps to {asset_id}")
            if normal is None:
                raise ValueError(
                    f"no_normal_map: nothing named {image.stem}[{'|'.join(NORMAL_SUFFIXES[:-1])}].png/.npy"
                )
            samples[asset_id] = pair_sample(asset_id, image, normal, cfg)
            row["status"] = "accepted"
        except (OSError, ValueError) as exc:
            row.update(status="rejected", reason=str(exc))
        rows.setdefault(asset_id, row)
    if not samples:
        raise ValueError(f"no usable pairs between {images} and {normals}: see {out / mf.MANIFEST}")
    split = shards.assign_splits(sorted(samples), cfg.val_fraction)
    tasks, written = [], {}
    for sp in shards.SPLITS:
        ids = [a for a in sorted(samples) if split[a] == sp]
        for i in range(0, len(ids), cfg.samples_per_shard):
            chunk = ids[i : i + cfg.samples_per_shard]
            rel = f"views/{sp}-{i // cfg.samples_per_shard:06d}.tar"
            written[rel] = shards.write_tar(out / rel, (samples[a] for a in chunk))
            tasks.append(
                {
                    "set": "views",
                    "split": sp,
                    "path": rel,
                    "units": [{"asset_id": a, "domain": cfg.domain} for a in chunk],
                }
            )
        for a in ids:
            rows[a]["split"] = sp
    for p in (out / "views").glob("*.tar"):
        if f"views/{p.name}" not in written:
            p.unlink()
    ordered = [rows[k] for k in sorted(rows)]
    index = shards.shard_index(dataclasses.asdict(cfg), tasks, written, mf.summarize(ordered))
    io.write_json(out / shards.INDEX, index)
    mf.write_manifest(out, ordered)
    return index
