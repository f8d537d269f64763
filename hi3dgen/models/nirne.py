"""NiRNE: noise-injected regressive normal estimation with a dual-stream network (Hi3DGen, Sec. 3.2).

The clean stream sees the image; the noisy stream sees the image with injected Gaussian noise, its
noise level given as an embedding. Noise injection makes the noisy stream attend to high-frequency
detail (sharp edges), the clean stream keeps the low-frequency layout. As in the released code's
ControlNet layout, the clean features join the noisy stream through zero-initialized 1x1
projections at every resolution, and one decoder regresses unit normals in a single pass.
At inference no noise is injected unless asked for.

Two backbones (`backbone`): `unet`, the small convolutional U-Net here, trained from scratch; `sd`, a
pretrained Stable Diffusion 2.x / StableNormal U-Net in the latent space of its VAE
(`hi3dgen.models.nirne_sd`; `hi3dgen.models.backbones.build_nirne` builds either, importing
diffusers only when asked for). Both keep the
`clean_stream.*` / `noisy_stream.*` / `fusion.*` state-dict layout and the two-stage training.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
import tyro
from torch import nn

from hi3dgen.config import flag
from hi3dgen.models.blocks import LevelEmbedding, UNetDecoder, UNetEncoder, level_channels, zero_conv

SCHEDULES = ("cosine", "linear")
BACKBONES = ("unet", "sd")


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Noise injection: a level t ~ U(t_min, t_max) per sample, x_t = sqrt(a(t)) x + sqrt(1 - a(t)) eps
    with a(t) = cos^2(pi t / 2) (`cosine`) or 1 - t (`linear`). `enabled=False` trains without it."""

    enabled: Annotated[bool, flag("--noise")] = True  # --no-noise: the ablation without noise injection
    schedule: str = "cosine"
    t_min: float = 0.0
    t_max: float = 0.75

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"noise schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if not 0.0 <= self.t_min <= self.t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min <= t_max <= 1, got {self.t_min}, {self.t_max}")

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        if self.schedule == "cosine":
            return torch.cos(t * (math.pi / 2)) ** 2
        return 1.0 - t

    def inject(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar(t.float()).to(x.dtype)[:, None, None, None]
        return a.sqrt() * x + (1 - a).sqrt() * eps


@dataclasses.dataclass(frozen=True)
class SDBackboneConfig:
    """The `sd` backbone: the diffusers models' own configs (config.json of unet/, vae/ and the
    clean stream's ControlNet), filled from `--backbone-from DIR` at stage 1 and kept in every
    checkpoint, which thereby rebuilds without DIR."""

    backbone_from: Annotated[str | None, flag("--backbone-from")] = None  # a local diffusers SD 2.x / StableNormal dir
    hint_channels: tuple[int, ...] = (16, 32, 96, 256)  # the ControlNet's pixel-hint encoder (one level per VAE 2x)
    gradient_checkpointing: bool = False  # recompute the U-Nets' and the VAE decoder's activations in backward
    unet: Annotated[dict | None, tyro.conf.Suppress] = None
    vae: Annotated[dict | None, tyro.conf.Suppress] = None
    controlnet: Annotated[dict | None, tyro.conf.Suppress] = None


@dataclasses.dataclass(frozen=True)
class NiRNEConfig:
    """Width and depth of both streams and the decoder. `patch` is the stem's stride: features run at
    1/patch of the image, and the decoder head returns to full resolution. Under `backbone: sd` the
    architecture is the diffusers models' (`sd`) and the width fields do not apply."""

    backbone: Annotated[str, flag("--backbone")] = "unet"  # unet (from scratch) | sd (pretrained, `sd`)

    width: int = 128
    mults: tuple[int, ...] = (1, 2, 4, 4)
    blocks: int = 2
    patch: int = 4
    emb_dim: int = 256
    head_ch: int = 16
    dual_stream: Annotated[bool, flag("--dual-stream")] = True  # False: the single-stream ablation
    noise: NoiseConfig = dataclasses.field(default_factory=NoiseConfig)
    clean_init: str | None = None  # a local state dict to start the clean stream from
    noisy_init: str | None = None  # likewise for the noisy stream
    sd: SDBackboneConfig = dataclasses.field(default_factory=SDBackboneConfig)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"model backbone must be one of {BACKBONES}, not {self.backbone!r}")
        if self.sd.backbone_from and self.backbone != "sd":
            raise ValueError("--backbone-from needs the sd backbone (--backbone sd, or --preset sd)")

    def architecture(self) -> "NiRNEConfig":
        """This config without its pointers to pretrained weights: what rebuilds a model whose
        weights come from a checkpoint."""
        sd = dataclasses.replace(self.sd, backbone_from=None)
        return dataclasses.replace(self, clean_init=None, noisy_init=None, sd=sd)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this (inference pads to it)."""
        return self.patch * 2 ** (len(self.mults) - 1)


class NoisyStream(nn.Module):
    """The encoder that sees the noise-injected image, conditioned on the noise level."""

    def __init__(self, cfg: NiRNEConfig):
        super().__init__()
        self.embed = LevelEmbedding(cfg.emb_dim)
        self.encoder = UNetEncoder(3, cfg.width, cfg.mults, cfg.blocks, cfg.patch, cfg.emb_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        emb = self.embed(t)
        return self.encoder(x, emb), emb


class NiRNEBase(nn.Module):
    """What both backbones share: the streams' pretrained starts, stage 2's frozen clean stream,
    noise sampling and padded prediction. A subclass builds `noisy_stream` (and `clean_stream` when
    `cfg.dual_stream`), defines `forward(image, t, eps)`, the `stride` inputs are padded to and the
    shape of the noise it injects (`noise_shape`)."""

    cfg: NiRNEConfig
    stride: int

    def __init__(self, cfg: NiRNEConfig):
        super().__init__()
        self.cfg = cfg
        self.clean_frozen = False

    def load_stream_inits(self) -> None:
        """`clean_init` / `noisy_init`: the streams' weights from local state dicts."""
        if self.cfg.clean_init:
            if not self.cfg.dual_stream:
                raise ValueError("clean_init needs the dual stream (dual_stream=True)")
            load_stream_weights(self.clean_stream, self.cfg.clean_init, "clean_stream.")
        if self.cfg.noisy_init:
            load_stream_weights(self.noisy_stream, self.cfg.noisy_init, "noisy_stream.")

    def freeze_clean_stream(self) -> None:
        """Stage 2: the clean stream keeps what stage 1 learned; it stays in eval mode and gets no grads."""
        if not self.cfg.dual_stream:
            raise ValueError("this model has no clean stream to freeze (dual_stream=False)")
        self.clean_frozen = True
        self.clean_stream.requires_grad_(False)
        self.clean_stream.eval()

    def train(self, mode: bool = True) -> "NiRNEBase":
        super().train(mode)
        if self.clean_frozen:
            self.clean_stream.eval()
        return self

    def noise_shape(self, image: torch.Tensor) -> tuple[int, ...]:
        return tuple(image.shape)

    def sample_noise(self, image: torch.Tensor, generator: torch.Generator | None = None):
        """Per-sample noise levels and noise for a training batch (zeros when injection is off)."""
        b = image.shape[0]
        noise = self.cfg.noise
        if not noise.enabled:
            return torch.zeros(b, device=image.device), None
        u = torch.rand(b, device=image.device, generator=generator)
        t = noise.t_min + (noise.t_max - noise.t_min) * u
        eps = torch.randn(self.noise_shape(image), device=image.device, dtype=image.dtype, generator=generator)
        return t, eps

    @torch.no_grad()
    def predict(
        self, image: torch.Tensor, noise_level: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Normals for images of any size: pad to a multiple of the stride (at least two strides, so
        the bottleneck's norms see more than one value), run, crop back. `noise_level` > 0 injects
        noise at that level (off by default, so outputs are deterministic)."""
        h, w = image.shape[-2:]
        s = self.stride
        ph, pw = max(h + (-h) % s, 2 * s) - h, max(w + (-w) % s, 2 * s) - w
        x = F.pad(image, (0, pw, 0, ph), mode="replicate") if ph or pw else image
        t = torch.full((x.shape[0],), float(noise_level), device=x.device)
        eps = None
        if noise_level > 0:
            eps = torch.randn(self.noise_shape(x), device=x.device, dtype=x.dtype, generator=generator)
        return self(x, t, eps)[..., :h, :w]


class NiRNE(NiRNEBase):
    """The `unet` backbone: both streams and the decoder trained from scratch (or from `*_init`)."""

    def __init__(self, cfg: NiRNEConfig):
        super().__init__(cfg)
        self.noisy_stream = NoisyStream(cfg)
        if cfg.dual_stream:
            self.clean_stream = UNetEncoder(3, cfg.width, cfg.mults, cfg.blocks, cfg.patch)
            chans = level_channels(cfg.width, cfg.mults)
            self.fusion = nn.ModuleList(zero_conv(c, c) for c in [*chans, chans[-1]])
        self.decoder = UNetDecoder(3, cfg.width, cfg.mults, cfg.blocks, cfg.patch, cfg.emb_dim, head_ch=cfg.head_ch)
        self.load_stream_inits()

    @property
    def stride(self) -> int:
        return self.cfg.stride

    def forward(
        self, image: torch.Tensor, t: torch.Tensor | None = None, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1] -> unit normals (B, 3, H, W). Noise goes in only when `eps` is given."""
        x = image * 2 - 1
        if t is None:
            t = torch.zeros(x.shape[0], device=x.device)
        x_noisy = self.cfg.noise.inject(x, t, eps) if eps is not None else x
        feats, emb = self.noisy_stream(x_noisy, t)
        if self.cfg.dual_stream:
            clean = self.clean_stream(x)
            feats = [f + proj(c) for f, c, proj in zip(feats, clean, self.fusion)]
        out = self.decoder(feats, x, emb)
        return F.normalize(out.float(), dim=1, eps=1e-6)


def load_stream_weights(stream: nn.Module, path: str | Path, prefix: str) -> None:
    """Start a stream from a local state dict: a bare one, or a checkpoint whose `model` holds
    `prefix`-ed keys (e.g. a NiRNE checkpoint, or a backbone converted to this layout)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} do not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = stream.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit the stream ({len(missing)} missing keys, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}): convert it to this layout first"
        )
