"""NoRLD's network and sampler: a transformer over the shape VAE's latent tokens, conditioned on a
normal map through cross-attention to its image tokens, trained by rectified-flow matching
(Hi3DGen, Sec. 3.3).

Flow convention: x_t = (1 - t) x0 + t eps, t in [0, 1] (t = 1 is noise); the network predicts the
velocity v = eps - x0, so the clean latent is x̂0 = x_t - t v̂ (what the normal regularizer
decodes). A learned null condition replaces the image tokens for dropped conditions, which
classifier-free guidance uses at sampling time.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from hi3dgen.models.blocks import LevelEmbedding
from hi3dgen.models.shape_vae import Block


@dataclasses.dataclass(frozen=True)
class NoRLDConfig:
    num_latents: int = 256  # L and C of the shape VAE's latent (taken from the VAE when training)
    latent_dim: int = 16
    width: int = 512
    depth: int = 12
    heads: int = 8
    image_size: int = 224  # the condition normal map is resized to this (square)
    patch: int = 14
    image_layers: int = 2  # self-attention blocks over the image tokens
    cond_drop: float = 0.1  # share of training samples whose condition is replaced by the null one
    t_mean: float = 0.0  # logit-normal t: sigmoid(N(t_mean, t_std))
    t_std: float = 1.0


class NormalMapEncoder(nn.Module):
    """Normal map (B, 3, S, S) in [-1, 1] (0 on background) -> (B, (S/p)^2, width) tokens."""

    def __init__(self, cfg: NoRLDConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise ValueError(f"image_size {cfg.image_size} is not a multiple of patch {cfg.patch}")
        n = (cfg.image_size // cfg.patch) ** 2
        self.patchify = nn.Conv2d(3, cfg.width, cfg.patch, stride=cfg.patch)
        self.pos = nn.Parameter(torch.randn(n, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.image_layers))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, normal: torch.Tensor) -> torch.Tensor:
        h = self.patchify(normal).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.norm(h)


class NoRLD(nn.Module):
    def __init__(self, cfg: NoRLDConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.image = NormalMapEncoder(cfg)
        self.null_cond = nn.Parameter(torch.zeros((cfg.image_size // cfg.patch) ** 2, w))
        self.time = LevelEmbedding(w)
        self.x_in = nn.Linear(cfg.latent_dim, w)
        self.pos = nn.Parameter(torch.randn(cfg.num_latents, w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, cfg.heads, context_dim=w, cond_dim=w) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False)
        self.ada_out = nn.Linear(w, 2 * w)
        self.x_out = nn.Linear(w, cfg.latent_dim)
        for layer in (self.ada_out, self.x_out):  # start as "velocity 0"
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # Latent normalization (per channel) measured on the training data by the trainer, so the
        # flow runs on unit-variance latents; kept in the state dict for sampling.
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(cfg.latent_dim))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean) / self.latent_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    def condition(self, normal: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Image tokens of the condition; rows where `drop` (B,) is true get the null condition."""
        if normal.shape[-1] != self.cfg.image_size or normal.shape[-2] != self.cfg.image_size:
            normal = F.interpolate(normal, size=(self.cfg.image_size,) * 2, mode="bilinear", align_corners=False)
        tokens = self.image(normal)
        if drop is not None:
            tokens = torch.where(drop[:, None, None], self.null_cond.to(tokens.dtype), tokens)
        return tokens

    def null_condition(self, batch: int) -> torch.Tensor:
        return self.null_cond[None].expand(batch, -1, -1)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, normal: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity (B, L, C) at x_t (B, L, C), t (B,) for condition normal maps (B, 3, H, W), the
        whole network in one call (what DDP and torch.compile wrap)."""
        return self.velocity(x, t, self.condition(normal, drop))

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Velocity for precomputed condition tokens (B, N, width) (sampling reuses them)."""
        emb = self.time(t)
        h = self.x_in(x) + self.pos
        for block in self.blocks:
            h = block(h, cond, emb)
        scale, shift = self.ada_out(F.silu(emb))[:, None].chunk(2, dim=-1)
        return self.x_out(self.norm_out(h) * (1 + scale) + shift)

    def sample_t(self, batch: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logit-normal t (SD3): more steps in the middle of the path, where the velocity is hardest."""
        n = torch.randn(batch, device=device, generator=generator)
        return torch.sigmoid(self.cfg.t_mean + self.cfg.t_std * n)

    @torch.no_grad()
    def sample(
        self, normal: torch.Tensor, steps: int = 25, guidance: float = 3.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Denormalized latents (B, L, C) for condition normal maps (B, 3, H, W): Euler from t = 1
        to 0 with classifier-free guidance v = v_null + g (v_cond - v_null) (g = 1: no guidance)."""
        b = normal.shape[0]
        cond = self.condition(normal)
        guided = guidance != 1.0
        if guided:
            cond = torch.cat([cond, self.null_condition(b).to(cond.dtype)])
        x = torch.randn(b, self.cfg.num_latents, self.cfg.latent_dim, device=normal.device, generator=generator)
        ts = torch.linspace(1.0, 0.0, steps + 1, device=normal.device)
        for t, t_next in zip(ts[:-1], ts[1:]):
            xin = torch.cat([x, x]) if guided else x
            v = self.velocity(xin, t.expand(len(xin)), cond).float()
            if guided:
                v_cond, v_null = v.chunk(2)
                v = v_null + guidance * (v_cond - v_null)
            x = x + (t_next - t) * v
        return self.denormalize(x)
