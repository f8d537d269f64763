"""Reading a user's image files (any 8/16-bit gray, RGB or RGBA), with a pixel cap checked from
the header before decoding."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 40_000_000  # reading and predicting takes ~50 bytes a pixel (measured): ~2 GB at this size


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the image file's header, without decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the caller has its own cap
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS} pixels, too large to read") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not a readable image (unknown format)") from None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Any 8/16-bit gray, RGB or RGBA file -> float32 RGB (H, W, 3) in [0, 1] and the foreground
    (alpha > 0; everything when there is no alpha). An image of more than `max_pixels` is refused
    from its header, before it takes the memory."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: not a readable image (the file is empty)")
    w, h = image_size(path)
    if w * h > max_pixels:
        raise ValueError(
            f"{path}: {w}x{h} is {w * h / 1e6:.1f} megapixels, more than the limit of "
            f"{max_pixels / 1e6:g} (--max-pixels); downscale it first"
        )
    try:
        img = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ValueError(f"{path}: not a readable image ({' '.join(str(exc).split())[:200]})") from None
    if img is None or img.size == 0:
        raise ValueError(f"{path}: not a readable image")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype)
    if scale is None:
        raise ValueError(f"{path}: unsupported pixel type {img.dtype} (need 8 or 16 bit)")
    img = img.astype(np.float32) / scale
    if img.ndim == 2:
        img = img[..., None]
    alpha = img[..., 3] if img.shape[2] == 4 else np.ones(img.shape[:2], np.float32)
    rgb = img[..., :3][..., ::-1] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)
    return np.ascontiguousarray(rgb), alpha > 0
