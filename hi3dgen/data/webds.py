"""Training readers over the shards written by `hi3dgen.data.shards`.

Both readers stream the shard list of `shards.json` with webdataset (tar reading, sample grouping,
buffer shuffle, node and worker splitting) and decode through `hi3dgen.data.codec`, never through
webdataset's image decoders (they turn 16-bit PNG into 8-bit).

Partitioning: every epoch the shard list (only shards that hold the requested domain) is shuffled
with (seed, epoch), the same on every rank, then split by DDP rank and by DataLoader worker
(`webdataset.split_by_node`, `split_by_worker`): the streams of one epoch read disjoint shards.

Data position (resuming mid-epoch): `start` is the number of samples this rank has already consumed
from a reader built with the same arguments. The stream of a (rank, worker) is a deterministic
function of (seed, epoch, rank, worker), so it replays to exactly where it stopped: whole epochs are
skipped from the counts in shards.json, the rest by reading past samples without decoding them.
With DataLoader workers, consumption is assumed round-robin in batches of `batch_size` (what
DataLoader does while no worker runs dry, i.e. with `resampled=True`), and `start` must be a
multiple of `batch_size`. Trainers store the count of samples they consumed and pass it back.

Each shard is checked against shards.json: its size when the reader is built, its samples as they
are read. A torn or changed shard is an error that names it, never a short epoch.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path

import numpy as np
import torch.utils.data
import webdataset as wds

from hi3dgen.data import DOMAIN_FILTERS, codec
from hi3dgen.data.shards import INDEX, MESH_MEMBERS, SPLITS


def load_index(shard_dir: str | os.PathLike) -> dict:
    path = Path(shard_dir) / INDEX
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `hi3dgen shard --in RENDER --out {shard_dir}`")
    return json.loads(path.read_text())


def worker_skip(start: int, batch_size: int, worker: int, num_workers: int) -> int:
    """Samples that DataLoader worker `worker` of `num_workers` produced when its rank had consumed
    `start` samples in round-robin batches of `batch_size`."""
    if num_workers <= 1:
        return start
    if start % batch_size:
        raise ValueError(
            f"start={start} must be a multiple of batch_size={batch_size} with {num_workers} DataLoader workers"
        )
    batches = start // batch_size
    return max(0, -(-(batches - worker) // num_workers)) * batch_size


def _camera(cam: dict) -> dict:
    return {
        "K": np.asarray(cam["K"], dtype=np.float32),
        "c2w": np.asarray(cam["c2w"], dtype=np.float32),
        "width": int(cam["width"]),
        "height": int(cam["height"]),
    }


def decode_view(sample: dict) -> dict:
    """A raw view sample -> key, asset_id, view, domain, source, normal (3, H, W) float32 (exactly
    the stored 16-bit values, mapped to [-1, 1]; 0 background), mask (H, W) bool, depth (H, W)
    float32, camera {K, c2w, width, height}, and image (3, H, W) float32 in [0, 1] when the
    sample has rgb.png."""
    meta = codec.decode_json(sample["meta.json"])
    out = {
        "key": sample["__key__"],
        "asset_id": meta["asset_id"],
        "view": int(meta["view"]),
        "domain": meta["domain"],
        "source": meta["source"],
        "normal": np.ascontiguousarray(codec.decode_normal(sample["normal.png"]).transpose(2, 0, 1)),
        "mask": codec.decode_mask(sample["mask.png"]),
        "depth": codec.decode_depth(sample["depth.npy.gz"]),
        "camera": _camera(codec.decode_json(sample["camera.json"])),
    }
    if "rgb.png" in sample:
        rgb = codec.decode_rgb(sample["rgb.png"]).transpose(2, 0, 1)
        out["image"] = np.ascontiguousarray(rgb, dtype=np.float32) / np.float32(255.0)
    return out


def decode_shape(sample: dict) -> dict:
    """A raw shape sample -> key, asset_id, domain, source, surface (N, 6) float32, sharp (K, 6)
    float32 (points on sharp edges), sdf (M, 4) float32, normals (V, 3, H, W) float32 (lossless,
    as in decode_view), masks (V, H, W) bool, cameras {K (V, 3, 3), c2w (V, 4, 4), width, height};
    and a val sample's ground-truth `mesh` (a trimesh), which evaluation compares reconstructions
    with."""
    meta = codec.decode_json(sample["meta.json"])
    mesh = {}
    if MESH_MEMBERS[0] in sample:
        import trimesh

        vertices, faces = (codec.decode_npy(sample[k]) for k in MESH_MEMBERS)
        mesh = {"mesh": trimesh.Trimesh(vertices, faces, process=False)}
    cams = [_camera(c) for c in codec.decode_json(sample["cameras.json"])]
    raw = codec.decode_npy(sample["normals.npy"])
    return {
        "key": sample["__key__"],
        "asset_id": meta["asset_id"],
        "domain": meta["domain"],
        "source": meta["source"],
        "surface": codec.decode_npy(sample["surface.npy"]),
        "sharp": codec.decode_npy(sample["sharp.npy"]),
        "sdf": codec.decode_npy(sample["sdf.npy"]),
        "normals": np.ascontiguousarray(codec.normal_from_raw(raw).transpose(0, 3, 1, 2)),
        "masks": codec.decode_npy(sample["masks.npy"]),
        "cameras": {
            "K": np.stack([c["K"] for c in cams]),
            "c2w": np.stack([c["c2w"] for c in cams]),
            "width": cams[0]["width"],
            "height": cams[0]["height"],
        },
        **mesh,
    }


def _domain_of(sample: dict) -> str:
    return codec.decode_json(sample["meta.json"])["domain"]


class ShardStream(torch.utils.data.IterableDataset):
    """Samples of one shard set and split, partitioned over ranks and workers (module docstring).

    `num_samples`: samples of the requested domain in the split (all ranks and workers together).
    """

    def __init__(
        self,
        shard_dir,
        set_name: str,
        split: str,
        domain: str,
        decode,
        *,
        shuffle: bool,
        seed: int,
        resampled: bool,
        start: int,
        batch_size: int,
        shuffle_buffer: int,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if domain not in DOMAIN_FILTERS:
            raise ValueError(f"domain must be one of {DOMAIN_FILTERS}, not {domain!r}")
        self.shard_dir = Path(shard_dir)
        entry = load_index(shard_dir)["sets"][set_name][split]
        counts: dict[str, int] = {}
        for shard in entry["shards"]:
            for d, n in shard["domains"].items():
                counts[d] = counts.get(d, 0) + n
        self.recorded = {str(self.shard_dir / s["path"]): s for s in entry["shards"]}
        self.shards = [
            (path, s["samples"] if domain == "any" else s["domains"].get(domain, 0))
            for path, s in self.recorded.items()
        ]
        self.shards = [(path, n) for path, n in self.shards if n]
        for path, _ in self.shards:
            size = os.path.getsize(path) if os.path.isfile(path) else None
            if size != self.recorded[path]["bytes"]:
                raise self._broken(path, "is missing" if size is None else f"has {size} bytes")
        self.num_samples = sum(n for _, n in self.shards)
        if not self.num_samples:
            have = ", ".join(f"{d} ({n} samples)" for d, n in sorted(counts.items())) or "none"
            raise ValueError(
                f"no {set_name[:-1]} samples of domain {domain!r} in split {split!r} of "
                f"{shard_dir}; domains there: {have}"
            )
        self.set_name, self.split, self.domain, self.decode = set_name, split, domain, decode
        self.shuffle, self.seed, self.resampled = shuffle, seed, resampled
        self.start, self.batch_size, self.shuffle_buffer = start, batch_size, shuffle_buffer

    def epoch_shards(self, epoch: int) -> list[tuple[str, int]]:
        """This rank's and worker's shards (path, samples of the domain) in one epoch."""
        order = list(self.shards)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(order))
            order = [order[i] for i in perm]
        return list(wds.split_by_worker(wds.split_by_node(order)))

    def _broken(self, path: str, problem: str) -> ValueError:
        s = self.recorded[path]
        return ValueError(
            f"shard {path} {problem}: {INDEX} records {s['bytes']} bytes, {s['samples']} samples, sha256 "
            f"{s['sha256']}. Write the shards again with the command that made them (`hi3dgen shard "
            f"--in RENDER --out {self.shard_dir}` or `hi3dgen import-pairs`), or restore them (`dvc checkout`)"
        )

    def _read(self, path: str):
        """The samples of one shard, all of those shards.json records."""
        n = 0
        try:
            for sample in wds.tarfile_to_samples()(iter([{"url": path}])):
                n += 1
                yield sample
        except Exception as exc:  # tarfile and webdataset raise many types for a torn tar
            raise self._broken(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
        if n != self.recorded[path]["samples"]:
            raise self._broken(path, f"holds {n} samples")

    def _decode(self, sample: dict) -> dict:
        try:
            return self.decode(sample)
        except (KeyError, ValueError) as exc:  # a member missing or torn
            raise self._broken(
                sample["__url__"],
                f"has a sample {sample['__key__']!r} that cannot be decoded ({type(exc).__name__}: {exc})",
            ) from None

    def _samples(self, shards: list[tuple[str, int]], epoch: int, stream: str):
        samples = itertools.chain.from_iterable(self._read(path) for path, _ in shards)
        if self.domain != "any":
            samples = (s for s in samples if _domain_of(s) == self.domain)
        if self.shuffle:
            rng = random.Random(f"{self.seed}:{epoch}:{stream}")
            samples = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(samples)
        return samples

    def __iter__(self):
        rank, world, worker, workers = wds.utils.pytorch_worker_info()
        skip = worker_skip(self.start, self.batch_size, worker, workers)
        epoch = 0
        while True:
            shards = self.epoch_shards(epoch)
            length = sum(n for _, n in shards)
            if self.resampled and not length:
                raise ValueError(
                    f"rank {rank} worker {worker} got no {self.split} shards of domain "
                    f"{self.domain!r}: {len(self.shards)} shards for {world * workers} streams; "
                    "write smaller shards (hi3dgen shard --samples-per-shard) or use fewer workers"
                )
            if skip < length or not self.resampled:
                break
            skip, epoch = skip - length, epoch + 1
        while True:
            samples = self._samples(self.epoch_shards(epoch), epoch, f"{rank}:{worker}")
            for sample in itertools.islice(samples, skip, None):
                yield self._decode(sample)
            if not self.resampled:
                return
            skip, epoch = 0, epoch + 1


def view_dataset(
    shard_dir: str | os.PathLike,
    split: str = "train",
    domain: str = "any",
    *,
    shuffle: bool = False,
    seed: int = 0,
    resampled: bool = False,
    start: int = 0,
    batch_size: int = 1,
    shuffle_buffer: int = 128,
) -> ShardStream:
    """View samples (see `decode_view` for the keys). `resampled=True`: an endless stream, each
    epoch reshuffled; `start`: the data position to resume from (module docstring)."""
    return ShardStream(
        shard_dir,
        "views",
        split,
        domain,
        decode_view,
        shuffle=shuffle,
        seed=seed,
        resampled=resampled,
        start=start,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
    )


def shape_dataset(
    shard_dir: str | os.PathLike,
    split: str = "train",
    domain: str = "any",
    *,
    shuffle: bool = False,
    seed: int = 0,
    resampled: bool = False,
    start: int = 0,
    batch_size: int = 1,
    shuffle_buffer: int = 16,
) -> ShardStream:
    """Shape samples (see `decode_shape` for the keys), with the same options as `view_dataset`."""
    return ShardStream(
        shard_dir,
        "shapes",
        split,
        domain,
        decode_shape,
        shuffle=shuffle,
        seed=seed,
        resampled=resampled,
        start=start,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
    )
