"""Shared convolutional building blocks (no torchvision here: it does not import beside torch 2.13).

A U-Net encoder returns one feature map per resolution plus the bottleneck, so that two encoders
can be joined level by level (NiRNE's dual stream) before one decoder consumes them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= 32 that divides `channels`."""
    groups = max(g for g in range(1, 33) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def zero_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A 1x1 convolution initialized to zero (ControlNet): a new branch starts as a no-op."""
    conv = nn.Conv2d(c_in, c_out, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) values in [0, 1] -> (B, dim) sin/cos features (t is scaled by 1000 like diffusion steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class LevelEmbedding(nn.Module):
    """Scalar level (noise level, timestep) -> a learned embedding vector."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))


class ResBlock(nn.Module):
    """Pre-norm residual block; an optional embedding modulates the second norm (scale, shift)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int = 0):
        super().__init__()
        self.norm1 = group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out) if emb_dim else None
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def level_channels(width: int, mults: tuple[int, ...]) -> list[int]:
    return [width * m for m in mults]


class UNetEncoder(nn.Module):
    """Patchify stem, then `blocks` ResBlocks per level with a stride-2 conv between levels, then a
    bottleneck block. `forward` returns [level_0, ..., level_{L-1}, bottleneck]."""

    def __init__(self, in_ch: int, width: int, mults: tuple[int, ...], blocks: int, patch: int, emb_dim: int = 0):
        super().__init__()
        chans = level_channels(width, mults)
        self.stem = (
            nn.Conv2d(in_ch, chans[0], patch, stride=patch) if patch > 1 else nn.Conv2d(in_ch, chans[0], 3, padding=1)
        )
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = chans[0]
        for i, ch in enumerate(chans):
            self.levels.append(nn.ModuleList(ResBlock(c if j == 0 else ch, ch, emb_dim) for j in range(blocks)))
            c = ch
            self.downs.append(Downsample(ch) if i < len(chans) - 1 else nn.Identity())
        self.mid = ResBlock(c, c, emb_dim)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> list[torch.Tensor]:
        h = self.stem(x)
        feats = []
        for blocks, down in zip(self.levels, self.downs):
            for block in blocks:
                h = block(h, emb)
            feats.append(h)
            h = down(h)
        feats.append(self.mid(h, emb))
        return feats


class UNetDecoder(nn.Module):
    """Consumes an encoder's feature list (deepest first) with skip concatenations; the head returns
    to full resolution through a pixel shuffle and refines there with the input image beside it."""

    def __init__(
        self,
        out_ch: int,
        width: int,
        mults: tuple[int, ...],
        blocks: int,
        patch: int,
        emb_dim: int = 0,
        image_ch: int = 3,
        head_ch: int = 16,
    ):
        super().__init__()
        chans = level_channels(width, mults)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        c = chans[-1]
        for i in reversed(range(len(chans))):
            ch = chans[i]
            self.levels.append(nn.ModuleList(ResBlock((c + ch) if j == 0 else ch, ch, emb_dim) for j in range(blocks)))
            c = ch
            self.ups.append(Upsample(ch) if i > 0 else nn.Identity())
        self.norm = group_norm(c)
        self.to_full = nn.Conv2d(c, head_ch * patch * patch, 3, padding=1)
        self.shuffle = nn.PixelShuffle(patch)
        self.refine = nn.Sequential(
            nn.Conv2d(head_ch + image_ch, head_ch, 3, padding=1), nn.SiLU(), nn.Conv2d(head_ch, out_ch, 3, padding=1)
        )

    def forward(self, feats: list[torch.Tensor], image: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = feats[-1]
        for blocks, up, skip in zip(self.levels, self.ups, reversed(feats[:-1])):
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, emb)
            h = up(h)
        h = self.shuffle(self.to_full(F.silu(self.norm(h))))
        return self.refine(torch.cat([F.silu(h), image], dim=1))
