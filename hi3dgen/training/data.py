"""Training batches of views: augmentation and a resumable batch stream.

Every random choice of a sample's augmentation comes from a generator seeded by the sample's place
in its stream, so a resumed run (which skips what it consumed) sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
import torch
import torch.distributed as dist


@dataclasses.dataclass
class AugmentConfig:
    """Random resized crop (+ horizontal flip, which negates normal x) and photometric jitter of the
    image only. `enabled=False` only resizes (validation)."""

    resolution: int = 256
    enabled: bool = True
    crop_scale: tuple[float, float] = (0.35, 1.0)  # crop area as a share of the image area
    crop_ratio: tuple[float, float] = (0.75, 1.333)
    flip: bool = True
    brightness: float = 0.15
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: float = 0.02  # max std of added Gaussian pixel noise
    blur_prob: float = 0.1


def resize_view(image: np.ndarray, normal: np.ndarray, mask: np.ndarray, h: int, w: int):
    """HWC image/normal and HW mask to (h, w); normals are renormalized and zeroed off the mask."""
    shrink = h * w < image.shape[0] * image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    normal = cv2.resize(normal, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where(mask[..., None] & (norm > 1e-6), normal / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
    return image, normal, mask


def _crop_box(rng: np.random.Generator, mask: np.ndarray, cfg: AugmentConfig) -> tuple[int, int, int, int]:
    """A random crop that keeps at least a little of the object (else the whole image)."""
    H, W = mask.shape
    for _ in range(10):
        area = H * W * rng.uniform(*cfg.crop_scale)
        ratio = np.exp(rng.uniform(np.log(cfg.crop_ratio[0]), np.log(cfg.crop_ratio[1])))
        w, h = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
        if 8 <= w <= W and 8 <= h <= H:
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            if mask[y : y + h, x : x + w].mean() > 0.05:
                return y, x, h, w
    return 0, 0, H, W


def _photometric(rng: np.random.Generator, img: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    img = img * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + rng.uniform(-cfg.brightness, cfg.brightness)
    gray = img.mean(-1, keepdims=True)
    img = gray + (img - gray) * (1 + rng.uniform(-cfg.saturation, cfg.saturation))
    img = np.clip(img, 0, 1) ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if cfg.noise_std > 0:
        img = img + rng.normal(0, rng.uniform(0, cfg.noise_std), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def prepare_view(sample: dict, cfg: AugmentConfig, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """One sample (CHW float image/normal, HW mask) -> augmented CHW arrays at cfg.resolution."""
    if "image" not in sample:
        raise ValueError(f"sample {sample.get('key')!r} has no image (rgb.png): render it with an RGB backend")
    image = np.ascontiguousarray(np.asarray(sample["image"], np.float32).transpose(1, 2, 0))
    normal = np.ascontiguousarray(np.asarray(sample["normal"], np.float32).transpose(1, 2, 0))
    mask = np.asarray(sample["mask"], bool)
    r = cfg.resolution
    if cfg.enabled:
        y, x, h, w = _crop_box(rng, mask, cfg)
        image, normal, mask = resize_view(image[y : y + h, x : x + w], normal[y : y + h, x : x + w], mask[y : y + h, x : x + w], r, r)
        if cfg.flip and rng.random() < 0.5:
            image, normal, mask = image[:, ::-1], normal[:, ::-1] * np.array([-1, 1, 1], np.float32), mask[:, ::-1]
        image = _photometric(rng, image, cfg)
    else:
        image, normal, mask = resize_view(image, normal, mask, r, r)
    return {
        "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
        "normal": np.ascontiguousarray(normal.transpose(2, 0, 1)),
        "mask": np.ascontiguousarray(mask),
    }


def collate(views: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([v[k] for v in views])) for k in views[0]}


def stream_info() -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers) of the calling DataLoader worker (or main process)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    info = torch.utils.data.get_worker_info()
    return (rank, world, info.id, info.num_workers) if info else (rank, world, 0, 1)


class ListStream(torch.utils.data.IterableDataset):
    """In-memory samples with the partition and resume contract of `hi3dgen.data.webds.view_dataset`
    (resampled): every epoch a (seed, epoch) permutation; stream (rank, worker) takes every
    (world * workers)-th item; `start` samples consumed by this rank are skipped."""

    def __init__(self, samples: list[dict], seed: int, start: int, batch_size: int):
        if not samples:
            raise ValueError("no samples")
        self.samples, self.seed, self.start, self.batch_size = samples, seed, start, batch_size

    def __iter__(self):
        from hi3dgen.data.webds import worker_skip

        rank, world, worker, workers = stream_info()
        streams, me = world * workers, rank * workers + worker
        skip = worker_skip(self.start, self.batch_size, worker, workers)
        n, epoch = len(self.samples), 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
            for i in range(me, n, streams):
                if skip:
                    skip -= 1
                else:
                    yield self.samples[order[i]]
            epoch += 1


class Prepared(torch.utils.data.IterableDataset):
    """Maps `prepare(sample, rng=...)` over a stream; sample k of stream (rank, worker) draws from a
    generator seeded by (seed, rank, worker, k), k counted from the start of training, so resuming
    replays it."""

    def __init__(self, stream: torch.utils.data.IterableDataset, prepare, seed: int, start: int, batch_size: int):
        self.stream, self.prepare, self.seed = stream, prepare, seed
        self.start, self.batch_size = start, batch_size

    def __iter__(self):
        from hi3dgen.data.webds import worker_skip

        rank, _, worker, workers = stream_info()
        k = worker_skip(self.start, self.batch_size, worker, workers)
        for sample in self.stream:
            yield self.prepare(sample, rng=np.random.default_rng([self.seed, rank, worker, k]))
            k += 1


class Batches:
    """An endless, resumable iterator of prepared batches through a DataLoader (any sample kind).

    `open_stream(start)` returns an endless IterableDataset of this rank's samples after the
    `start` it already consumed (the contract of `view_dataset(..., resampled=True, start=...)`);
    `prepare(sample, rng=...)` turns a sample into a dict of equally shaped arrays. The position is
    the count of samples consumed; resuming needs the same `workers`.
    """

    def __init__(self, open_stream, batch_size: int, prepare, seed: int = 0, workers: int = 0,
                 pin_memory: bool = False):
        self.open_stream, self.prepare = open_stream, prepare
        self.batch_size, self.seed = batch_size, seed
        self.workers, self.pin_memory = workers, pin_memory
        self.consumed = 0
        self._it = None

    def _loader(self) -> torch.utils.data.DataLoader:
        data = Prepared(self.open_stream(self.consumed), self.prepare, self.seed, self.consumed, self.batch_size)
        return torch.utils.data.DataLoader(
            data, batch_size=self.batch_size, num_workers=self.workers, collate_fn=collate,
            pin_memory=self.pin_memory, persistent_workers=self.workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # keep the global RNG (noise) untouched
        )

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._it is None:
            self._it = iter(self._loader())
        batch = next(self._it)
        self.consumed += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self._it = None


class ViewBatches(Batches):
    """Batches of augmented views (`prepare_view` with `augment`)."""

    def __init__(self, open_stream, batch_size: int, augment: AugmentConfig, seed: int = 0, workers: int = 0,
                 pin_memory: bool = False):
        super().__init__(open_stream, batch_size, functools.partial(prepare_view, cfg=augment), seed, workers, pin_memory)
        self.augment = augment
