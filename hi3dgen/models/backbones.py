"""The NiRNE of a config's backbone: `unet` (hi3dgen.models.nirne) or `sd` (hi3dgen.models.nirne_sd,
imported only when asked for: it needs diffusers, whose import takes seconds)."""

from __future__ import annotations

from hi3dgen.models.nirne import NiRNE, NiRNEBase, NiRNEConfig


def build_nirne(cfg: NiRNEConfig) -> NiRNEBase:
    if cfg.backbone == "sd":
        from hi3dgen.models.nirne_sd import NiRNESD

        return NiRNESD(cfg)
    return NiRNE(cfg)
