"""View data for training and evaluating normal estimation: where the views come from (view
shards, or `toy`: procedural views for machines without rendered data), their augmentation, and
resumable batches of them (`hi3dgen.data.batches`)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Annotated

import cv2
import numpy as np

from hi3dgen.config import flag
from hi3dgen.data import DOMAINS, toy
from hi3dgen.data.batches import Batches, ListStream
from hi3dgen.data.webds import view_dataset

TOY = "toy"


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random resized crop (+ horizontal flip, which negates normal x) and photometric jitter of the
    image only. `enabled=False` only resizes (validation)."""

    resolution: Annotated[int, flag("--resolution")] = 256  # the training crop size
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
        image, normal, mask = resize_view(
            image[y : y + h, x : x + w], normal[y : y + h, x : x + w], mask[y : y + h, x : x + w], r, r
        )
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


class ViewBatches(Batches):
    """Batches of augmented views (`prepare_view` with `augment`)."""

    def __init__(
        self,
        open_stream,
        batch_size: int,
        augment: AugmentConfig,
        seed: int = 0,
        workers: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__(
            open_stream, batch_size, functools.partial(prepare_view, cfg=augment), seed, workers, pin_memory
        )
        self.augment = augment


@dataclasses.dataclass(frozen=True)
class ViewDataConfig:
    shards: Annotated[str, flag("--data")] = TOY  # a view shard dir, or `toy` for procedural views
    domain: Annotated[str | None, flag("--domain")] = None  # None: `real` in stage 1, `synthetic` in stage 2
    val_domain: Annotated[str | None, flag("--val-domain")] = None  # None: the training domain
    batch_size: Annotated[int, flag("--batch-size")] = 8
    workers: Annotated[int, flag("--workers")] = 0  # threads that decode and augment
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    val_samples: int = 64  # val views evaluated during training (at augment.resolution)
    vis_samples: int = 4
    toy_train: int = 512  # toy views per domain
    toy_size: int = 128


def _toy_set(cfg: ViewDataConfig, split: str, domain: str) -> list[dict]:
    """`toy_train` train views per domain; val views (other seeds) split evenly over the domains."""
    domains = DOMAINS if domain == "any" else (domain,)
    n = cfg.toy_train if split == "train" else -(-cfg.val_samples // len(domains))
    seed = {"train": 0, "val": 1_000_000}[split]
    return [s for d in domains for s in toy.toy_samples(n, cfg.toy_size, d, seed + DOMAINS.index(d))]


def train_stream(cfg: ViewDataConfig, domain: str, seed: int):
    """start -> this rank's endless, shuffled stream of train views after `start` consumed ones.
    Built once here so that a domain without samples fails before training starts."""
    if cfg.shards == TOY:
        samples = _toy_set(cfg, "train", domain)
        return lambda start: ListStream(samples, seed, start, cfg.batch_size)

    def open_stream(start: int):
        return view_dataset(
            cfg.shards,
            split="train",
            domain=domain,
            shuffle=True,
            seed=seed,
            resampled=True,
            start=start,
            batch_size=cfg.batch_size,
        )

    open_stream(0)
    return open_stream


def eval_views(cfg: ViewDataConfig, split: str, domain: str):
    """The views of a split in a fixed order."""
    if cfg.shards == TOY:
        return _toy_set(cfg, split, domain)

    return view_dataset(cfg.shards, split=split, domain=domain)
