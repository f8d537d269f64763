"""Procedural view samples (image, camera-space normals, mask) for tests, benchmarks and ablations on
machines without rendered shards. Relief height fields h(x, y) inside a random silhouette, seen from
the front, give exact normals n = normalize(-dh/dx, -dh/dy, 1) (OpenGL camera: +X right, +Y up,
+Z towards the camera) and a Lambertian/Blinn-Phong image under random lights.

The two domains mimic the paper's split: `real` is smooth relief with textured albedo, specular
highlights and sensor noise; `synthetic` is clean, faceted relief with bevelled steps, whose sharp
creases are what SNE measures. Everything is batched torch, so it runs on the GPU too.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from hi3dgen.data import DOMAINS


def _u(g, device, lo, hi, *shape):
    return lo + (hi - lo) * torch.rand(*shape, generator=g, device=device)


def _smooth_field(g, device, n, c, size, cells):
    return F.interpolate(
        torch.rand(n, c, cells, cells, generator=g, device=device),
        size=(size, size),
        mode="bicubic",
        align_corners=False,
    )


def _relief(g, device, n, x, y, r, domain):
    dome = torch.sqrt((1 - r**2).clamp(min=0)) * _u(g, device, 0.2, 0.6, n, 1, 1)
    if domain == "real":
        k = 8
        cx, cy = _u(g, device, -0.8, 0.8, n, k, 1, 1), _u(g, device, -0.8, 0.8, n, k, 1, 1)
        sigma, amp = _u(g, device, 0.08, 0.35, n, k, 1, 1), _u(g, device, -0.25, 0.25, n, k, 1, 1)
        bumps = amp * torch.exp(-((x[:, None] - cx) ** 2 + (y[:, None] - cy) ** 2) / (2 * sigma**2))
        return dome + bumps.sum(1)
    k = 5  # a roof of planes: min() leaves sharp creases where two planes meet
    a, b = _u(g, device, -1, 1, n, k, 1, 1), _u(g, device, -1, 1, n, k, 1, 1)
    c = _u(g, device, 0.2, 0.6, n, k, 1, 1)
    h = 0.3 * dome + (a * x[:, None] + b * y[:, None] + c).amin(1)
    m = 3  # bevelled rectangular steps
    cx, cy = _u(g, device, -0.6, 0.6, n, m, 1, 1), _u(g, device, -0.6, 0.6, n, m, 1, 1)
    hw, hh = _u(g, device, 0.08, 0.3, n, m, 1, 1), _u(g, device, 0.08, 0.3, n, m, 1, 1)
    th = _u(g, device, 0, math.pi, n, m, 1, 1)
    bevel, amp = _u(g, device, 0.02, 0.06, n, m, 1, 1), _u(g, device, 0.05, 0.2, n, m, 1, 1)
    dx, dy = x[:, None] - cx, y[:, None] - cy
    lx, ly = dx * torch.cos(th) + dy * torch.sin(th), -dx * torch.sin(th) + dy * torch.cos(th)
    inside = torch.minimum(hw - lx.abs(), hh - ly.abs())
    return h + (amp * (inside / bevel).clamp(0, 1)).sum(1)


def toy_batch(
    n: int, size: int, domain: str, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """`n` views: image (n, 3, S, S) in [0, 1], normal (n, 3, S, S) unit inside the mask and 0
    outside, mask (n, S, S) bool."""
    if domain not in DOMAINS:
        raise ValueError(f"toy domain must be one of {DOMAINS}, not {domain!r}")
    g, dev = generator, torch.device(device)
    lin = torch.linspace(-1, 1, size, device=dev)
    rows, cols = torch.meshgrid(lin, lin, indexing="ij")
    x, y = cols[None].expand(n, -1, -1), -rows[None].expand(n, -1, -1)  # y up
    th = _u(g, dev, 0, math.pi, n, 1, 1)
    cx, cy = _u(g, dev, -0.15, 0.15, n, 1, 1), _u(g, dev, -0.15, 0.15, n, 1, 1)
    a, b, p = _u(g, dev, 0.45, 0.9, n, 1, 1), _u(g, dev, 0.45, 0.9, n, 1, 1), _u(g, dev, 2, 5, n, 1, 1)
    xr = ((x - cx) * torch.cos(th) + (y - cy) * torch.sin(th)) / a
    yr = (-(x - cx) * torch.sin(th) + (y - cy) * torch.cos(th)) / b
    r = (xr.abs() ** p + yr.abs() ** p) ** (1 / p)
    mask = r < 1
    h = _relief(g, dev, n, x, y, r, domain) * _u(g, dev, 0.5, 1.5, n, 1, 1)
    step = 2.0 / (size - 1)
    dh_drow, dh_dx = torch.gradient(h, spacing=step, dim=(1, 2))
    normal = F.normalize(torch.stack([-dh_dx, dh_drow, torch.ones_like(h)], 1), dim=1)  # dh/dy = -dh/drow
    normal = normal * mask[:, None]

    light = F.normalize(
        torch.stack([_u(g, dev, -1, 1, n, 2), _u(g, dev, -1, 1, n, 2), _u(g, dev, 0.3, 1, n, 2)], -1), dim=-1
    )
    power = _u(g, dev, 0.4, 0.9, n, 2)
    lambert = torch.einsum("nchw,nlc->nlhw", normal, light).clamp(min=0)
    shade = _u(g, dev, 0.1, 0.3, n, 1, 1, 1) + (power[..., None, None] * lambert).sum(1, keepdim=True)
    base = _u(g, dev, 0.3, 0.9, n, 3, 1, 1)
    if domain == "real":
        albedo = base * (0.7 + 0.6 * _smooth_field(g, dev, n, 1, size, 6)) + 0.1 * (
            _smooth_field(g, dev, n, 3, size, size // 4) - 0.5
        )
        half = F.normalize(light + torch.tensor([0.0, 0.0, 1.0], device=dev), dim=-1)
        spec = torch.einsum("nchw,nlc->nlhw", normal, half).clamp(min=0) ** 32
        image = albedo * shade + _u(g, dev, 0, 0.3, n, 1, 1, 1) * spec.sum(1, keepdim=True)
        background = _smooth_field(g, dev, n, 3, size, 4)
        image = torch.where(mask[:, None], image, background)
        image = image + _u(g, dev, 0, 0.03, n, 1, 1, 1) * torch.randn(image.shape, generator=g, device=dev)
    else:
        image = torch.where(mask[:, None], base * shade, _u(g, dev, 0, 1, n, 1, 1, 1).expand(-1, 3, -1, -1))
    return {"image": image.clamp(0, 1).float(), "normal": normal.float(), "mask": mask}


@functools.lru_cache(maxsize=8)
def toy_samples(n: int, size: int, domain: str, seed: int = 0) -> list[dict]:
    """`n` samples in the format of `hi3dgen.data.webds.view_dataset` (numpy, CHW). Cached: the
    stages of an ablation in one process share them (callers must not modify them)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, 256):
        batch = toy_batch(min(256, n - start), size, domain, g)
        out += [
            {
                "key": f"toy{domain}_{seed}_{start + i:05d}",
                "domain": domain,
                "image": batch["image"][i].numpy(),
                "normal": batch["normal"][i].numpy(),
                "mask": batch["mask"][i].numpy().astype(bool),
            }
            for i in range(len(batch["image"]))
        ]
    return out
