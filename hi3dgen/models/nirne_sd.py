"""NiRNE on a pretrained Stable Diffusion 2.x / StableNormal backbone, in the latent space of its VAE:
the layout of NiRNE's released inference code (a ControlNet branch over StableNormal's U-Net that
regresses in one step), trained here with the same two stages and noise injection as `NiRNE`.

- noisy stream (`noisy_stream.*`): the diffusers `UNet2DConditionModel`. It sees the image's VAE
  latent with noise injected (NoiseConfig's levels, in latent space; its timestep is the SD step of
  the same noise level, so the prior sees the noise it was trained on) and predicts the latent of
  the normal map in one step. The frozen VAE decodes that latent, and the loss is on the unit
  normals as with the unet backbone (gradients pass through the decoder, as in E2E-FT).
- clean stream (`clean_stream.*`): a `ControlNetModel`, copied from that U-Net (ControlNet's recipe)
  or read from DIR/controlnet/. It sees the clean latent at step 0, with the image's pixels as its
  hint. Its zero-initialized 1x1 projections are taken out of it into `fusion.*` (one per skip of
  the U-Net, one for its middle block), so stage 2 freezes the stream and still trains the fusion,
  as with the unet backbone.
- no text: every cross-attention gets a zero embedding of one token. SD's key and value projections
  have no bias, so attention then yields its output bias alone: no text encoder, tokenizer or
  prompt is needed (NiRNE's released pipeline passes zeros too).
- the VAE (`vae.*`) is frozen (no grads, eval mode) and kept in the state dict: a checkpoint is whole.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from torch import nn

from hi3dgen.models.nirne import NiRNEBase, NiRNEConfig

# DIR/<part>/ must hold config.json of this class and one of the weight files
REQUIRED = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}
OPTIONAL = {"controlnet": ControlNetModel}  # NiRNE's / YOSO's layout: the clean stream's start
WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)
LAYOUT = (
    "DIR/unet/ and DIR/vae/, each with config.json and diffusion_pytorch_model.safetensors "
    "(or its .fp16 / .bin variant), and optionally DIR/controlnet/ alike: an SD 2.x or StableNormal "
    "checkpoint as `huggingface-cli download` lays it out (README: NiRNE on a pretrained backbone)"
)


def sd_alpha_bar(device=None, steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """The cumulative signal level of SD 2.x's (and StableNormal's) `scaled_linear` training schedule."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64, device=device) ** 2
    return torch.cumprod(1 - betas, 0).float()


def plain_config(config) -> dict:
    """A diffusers model config as plain JSON values, without its bookkeeping (`_class_name` ...)."""
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))


def backbone_parts(root: str | Path) -> dict[str, Path]:
    """The weight file of each part of a diffusers checkpoint dir; a ValueError naming everything
    that is missing when `root` is not one."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--backbone-from {root}: no such directory (expected {LAYOUT})")
    parts, missing = {}, []
    wanted = {**REQUIRED, **{k: v for k, v in OPTIONAL.items() if (root / k).exists()}}
    for part, cls in wanted.items():
        config = root / part / "config.json"
        if not config.is_file():
            missing.append(f"{part}/config.json")
        else:
            try:
                name = json.loads(config.read_text()).get("_class_name")
            except (ValueError, AttributeError):
                name = "unreadable JSON"
            if name != cls.__name__:
                missing.append(f"{part}/config.json of a {cls.__name__} (it names {name!r})")
        weights = next((root / part / f for f in WEIGHT_FILES if (root / part / f).is_file()), None)
        if weights is None:
            missing.append(f"{part}/{WEIGHT_FILES[0]}")
        parts[part] = weights
    if missing:
        raise ValueError(
            f"--backbone-from {root} is not a diffusers SD 2.x / StableNormal checkpoint: "
            f"missing {', '.join(missing)} (expected {LAYOUT})"
        )
    return parts


def load_backbone(root: str | Path) -> dict[str, nn.Module]:
    """The diffusers models of a local checkpoint dir, in float32 (nothing is downloaded)."""
    models = {}
    for part, weights in backbone_parts(root).items():
        cls = {**REQUIRED, **OPTIONAL}[part]
        models[part] = cls.from_pretrained(
            root,
            subfolder=part,
            variant="fp16" if ".fp16." in weights.name else None,
            use_safetensors=weights.suffix == ".safetensors",
            torch_dtype=torch.float32,
            local_files_only=True,
            low_cpu_mem_usage=False,  # its True needs accelerate
        )
    return models


class NiRNESD(NiRNEBase):
    """The `sd` backbone (module docstring). Built from `cfg.sd.backbone_from` (a checkpoint dir), or,
    without it, from the diffusers configs in `cfg.sd` with random weights (a checkpoint's weights
    then go in with `load_state_dict`)."""

    def __init__(self, cfg: NiRNEConfig):
        super().__init__(cfg)
        sd = cfg.sd
        if sd.backbone_from:
            parts = load_backbone(sd.backbone_from)
        elif sd.unet and sd.vae:
            parts = {"unet": UNet2DConditionModel.from_config(sd.unet), "vae": AutoencoderKL.from_config(sd.vae)}
            if sd.controlnet:
                parts["controlnet"] = ControlNetModel.from_config(sd.controlnet)
        else:
            raise ValueError("the sd backbone starts from a local diffusers checkpoint: give --backbone-from DIR")
        unet, vae = parts["unet"], parts["vae"]
        latent = vae.config.latent_channels
        if unet.config.out_channels != latent or unet.config.in_channels not in (latent, 2 * latent):
            raise ValueError(
                f"the U-Net ({unet.config.in_channels} -> {unet.config.out_channels} channels) does not fit the "
                f"VAE's {latent}-channel latents (it takes {latent}, or {2 * latent} as StableNormal's does)"
            )
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.stride = self.vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)
        self.scale = vae.config.scaling_factor
        self.noisy_stream = unet
        controlnet = None
        if cfg.dual_stream:
            controlnet = parts.get("controlnet")
            if controlnet is None:
                controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=sd.hint_channels)
            hint_factor = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
            if hint_factor != self.vae_factor:
                raise ValueError(
                    f"the ControlNet's hint encoder downsamples {hint_factor}x, the VAE {self.vae_factor}x: give "
                    f"model.sd.hint-channels {len(vae.config.block_out_channels)} values"
                )
            self.fusion = nn.ModuleList([*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block])
            controlnet.controlnet_down_blocks = nn.ModuleList(nn.Identity() for _ in self.fusion[:-1])
            controlnet.controlnet_mid_block = nn.Identity()
            self.clean_stream = controlnet
        self.vae = vae.requires_grad_(False).eval()
        if sd.gradient_checkpointing:
            for m in (unet, controlnet, vae):
                if m is not None:
                    m.enable_gradient_checkpointing()
        configs = {"unet": plain_config(unet.config), "vae": plain_config(vae.config)}
        configs["controlnet"] = plain_config(controlnet.config) if controlnet is not None else None
        self.cfg = dataclasses.replace(cfg, sd=dataclasses.replace(sd, **configs))
        self.load_stream_inits()

    def train(self, mode: bool = True) -> "NiRNESD":
        super().train(mode)
        self.vae.eval()
        return self

    def noise_shape(self, image: torch.Tensor) -> tuple[int, ...]:
        b, _, h, w = image.shape
        return (b, self.vae.config.latent_channels, h // self.vae_factor, w // self.vae_factor)

    def diffusion_step(self, t: torch.Tensor) -> torch.Tensor:
        """The SD timestep whose noise level is the injected one (0 for no noise). The schedule is
        computed where `t` is (1000 values; no host copy, so CUDA graphs capture it)."""
        sd = sd_alpha_bar(t.device)
        a = self.cfg.noise.alpha_bar(t.float())
        return (sd[None] > a[:, None]).sum(1).clamp(max=sd.numel() - 1)

    def unet_input(self, image_latent: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """A 2x-latent U-Net (StableNormal's, Marigold's) takes the image latent beside its own."""
        if self.noisy_stream.config.in_channels == latent.shape[1]:
            return latent
        return torch.cat([image_latent, latent], dim=1)

    def forward(
        self, image: torch.Tensor, t: torch.Tensor | None = None, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1], sides multiples of the VAE's factor -> unit normals
        (B, 3, H, W). Noise goes into the latent only when `eps` (of `noise_shape`) is given."""
        x = image * 2 - 1
        if t is None:
            t = torch.zeros(x.shape[0], device=x.device)
        with torch.no_grad():
            z = self.vae.encode(x).latent_dist.mode() * self.scale
        z_noisy = self.cfg.noise.inject(z, t, eps) if eps is not None else z
        text = z.new_zeros(x.shape[0], 1, self.noisy_stream.config.cross_attention_dim)
        step = self.diffusion_step(t)
        residuals = {}
        if self.cfg.dual_stream:
            down, mid = self.clean_stream(
                self.unet_input(z, z), torch.zeros_like(step), text, controlnet_cond=x, return_dict=False
            )
            residuals = {
                "down_block_additional_residuals": [proj(d) for proj, d in zip(self.fusion, down)],
                "mid_block_additional_residual": self.fusion[-1](mid),
            }
        out = self.noisy_stream(self.unet_input(z, z_noisy), step, text, return_dict=False, **residuals)[0]
        normals = self.vae.decode(out / self.scale).sample
        return F.normalize(normals.float(), dim=1, eps=1e-6)
