"""NiRNE inference on image files: any size and aspect, 16-bit normal PNG (the view-sample encoding,
via `hi3dgen.data.codec`) plus an 8-bit preview. One unreadable image is reported, not fatal.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hi3dgen import io
from hi3dgen import tracking as project_tracking
from hi3dgen.data import codec
from hi3dgen.models.nirne import NiRNE, NiRNEConfig
from hi3dgen.training import checkpoint


def nirne_from_state(state: dict, source: str, use_ema: bool = True) -> NiRNE:
    """The NiRNE a checkpoint dict holds (`RUN/checkpoints/last.pt`: its EMA weights unless `use_ema`
    is false; `RUN/model.pt`: the exported weights); `source` names it in errors."""
    if state.get("kind") != "nirne":
        raise ValueError(f"{source} is not a NiRNE checkpoint (kind {state.get('kind')!r})")
    model = NiRNE(NiRNEConfig.from_dict({**state["config"]["model"], "clean_init": None, "noisy_init": None}))
    weights = state["model"]
    if use_ema and state.get("ema"):
        weights = {k: state["ema"]["shadow"].get(k, v).to(v.dtype) for k, v in weights.items()}
    model.load_state_dict(weights)
    return model


def load_nirne(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True) -> NiRNE:
    return nirne_from_state(checkpoint.load(path), str(path), use_ema).to(device).eval()


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Any 8/16-bit gray, RGB or RGBA file -> float32 RGB (H, W, 3) in [0, 1] and the foreground
    (alpha > 0; everything when there is no alpha)."""
    data = Path(path).read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
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


def predict_image(model: NiRNE, rgb: np.ndarray, max_side: int | None = 1024) -> np.ndarray:
    """(H, W, 3) image in [0, 1] -> (H, W, 3) unit normals. Images larger than `max_side` run
    downscaled and the normals are upsampled back."""
    device = next(model.parameters()).device
    x = torch.from_numpy(rgb.transpose(2, 0, 1)).to(device)[None]
    h, w = x.shape[-2:]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        x = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        n = model.predict(x)
    if n.shape[-2:] != (h, w):
        n = F.normalize(F.interpolate(n, size=(h, w), mode="bilinear", align_corners=False), dim=1)
    return n[0].float().permute(1, 2, 0).cpu().numpy()


def predict_files(model: NiRNE, paths: list[str], out_dir: str | os.PathLike,
                  max_side: int | None = 1024) -> list[tuple[str, str | None]]:
    """Writes OUT/<stem>.normal.png (16-bit, background 0 where alpha is 0) and OUT/<stem>.preview.png;
    returns (path, error or None) per input."""
    out_dir = Path(out_dir)
    results = []
    for path in paths:
        try:
            rgb, fg = read_image(path)
            normal = predict_image(model, rgb, max_side)
            stem = Path(path).stem
            io.write_bytes(out_dir / f"{stem}.normal.png", codec.encode_normal(normal, fg))
            io.write_bytes(out_dir / f"{stem}.preview.png", codec.encode_rgb(project_tracking.normal_to_rgb(normal, fg)))
            results.append((str(path), None))
        except (OSError, ValueError) as exc:
            results.append((str(path), str(exc)))
    return results
