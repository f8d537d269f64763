"""Normal-estimation metrics as the paper reports them: NE (mean angular error in degrees inside the
eroded foreground mask) and SNE (the same on sharp regions: Canny edges of the ground-truth normal
map, dilated), the median error, and the share of pixels under 11.25, 22.5 and 30 degrees.

Errors are pooled over all pixels of a set (not averaged per image); the median comes from a
0.01-degree histogram, so a whole val split takes constant memory.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

THRESHOLDS = (11.25, 22.5, 30.0)
BINS_PER_DEG = 100


@dataclasses.dataclass(frozen=True)
class NormalMetricsConfig:
    erode_px: int = 3  # the foreground is eroded so silhouette pixels (mixed fore/background) do not count
    sharp_dilate_px: int = 2  # < erode_px, so silhouette edges never enter the sharp region
    canny_low: int = 50  # hysteresis thresholds on the 8-bit ground-truth normal map
    canny_high: int = 100


def _disk(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def angular_error_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(3, H, W) normals -> (H, W) angle between them in degrees (both normalized first)."""
    p = pred / np.maximum(np.linalg.norm(pred, axis=0, keepdims=True), 1e-8)
    g = gt / np.maximum(np.linalg.norm(gt, axis=0, keepdims=True), 1e-8)
    return np.degrees(np.arccos(np.clip((p * g).sum(0), -1.0, 1.0)))


def eroded_mask(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask.astype(bool)
    return cv2.erode(mask.astype(np.uint8), _disk(px), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def sharp_mask(gt: np.ndarray, mask: np.ndarray, cfg: NormalMetricsConfig) -> np.ndarray:
    """Dilated Canny edges of the ground-truth normal map (any channel), inside the eroded mask."""
    u8 = np.round((np.clip(gt, -1, 1) * 0.5 + 0.5) * 255).astype(np.uint8)
    edges = np.zeros(mask.shape, np.uint8)
    for ch in u8:
        edges |= cv2.Canny(np.ascontiguousarray(ch), cfg.canny_low, cfg.canny_high)
    if cfg.sharp_dilate_px > 0:
        edges = cv2.dilate(edges, _disk(cfg.sharp_dilate_px))
    return (edges > 0) & eroded_mask(mask, cfg.erode_px)


class _Pool:
    def __init__(self):
        self.hist = np.zeros(180 * BINS_PER_DEG + 1, np.int64)
        self.total = 0.0
        self.count = 0

    def add(self, err: np.ndarray) -> None:
        self.hist += np.bincount(np.round(err * BINS_PER_DEG).astype(np.int64), minlength=self.hist.size)
        self.total += float(err.sum(dtype=np.float64))
        self.count += err.size

    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def median(self) -> float:
        if not self.count:
            return float("nan")
        return float(np.searchsorted(np.cumsum(self.hist), (self.count + 1) / 2) / BINS_PER_DEG)

    def share_below(self, deg: float) -> float:
        if not self.count:
            return float("nan")
        return float(self.hist[: int(round(deg * BINS_PER_DEG))].sum() / self.count)


class NormalMetrics:
    """Accumulates predictions of a set; `result()` gives NE, SNE, median and threshold shares (%)."""

    def __init__(self, cfg: NormalMetricsConfig | None = None):
        self.cfg = cfg or NormalMetricsConfig()
        self.all = _Pool()
        self.sharp = _Pool()
        self.images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> None:
        """pred, gt (3, H, W) normals; mask (H, W) bool foreground."""
        err = angular_error_deg(pred, gt)
        self.all.add(err[eroded_mask(mask, self.cfg.erode_px)])
        self.sharp.add(err[sharp_mask(gt, mask, self.cfg)])
        self.images += 1

    def result(self) -> dict[str, float]:
        out = {
            "NE": self.all.mean(),
            "SNE": self.sharp.mean(),
            "median": self.all.median(),
            "images": self.images,
            "pixels": self.all.count,
            "sharp_pixels": self.sharp.count,
        }
        for t in THRESHOLDS:
            out[f"pct_{t:g}"] = 100.0 * self.all.share_below(t)
        return out
