"""DVC stage `norld`: flow matching in the trained VAE's latent space, with the online normal
regularizer (params.yaml `norld.reg`: λ as `weight`, `share`, `t_max`, or any other field of its
config; null keeps the preset's value)."""

import dataclasses

from hi3dgen.training.norld import preset_config, train_norld
from pipelines.common import MODELS, params
from pipelines.train import train

VAE = MODELS / "vae" / "model.pt"


def main() -> None:
    p = params("norld")
    cfg = preset_config(p["preset"], str(VAE))
    cfg.reg = dataclasses.replace(cfg.reg, **{k: v for k, v in (p.get("reg") or {}).items() if v is not None})
    train("norld", train_norld, cfg, p.get("steps"))


if __name__ == "__main__":
    main()
