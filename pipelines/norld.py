"""DVC stage `norld`: flow matching in the trained VAE's latent space, with the online normal
regularizer (params.yaml `norld.overrides`: `reg.weight` is λ, `reg.share`, `reg.t_max` ...)."""

from hi3dgen.training.norld import NoRLDRunConfig, train_norld
from pipelines.common import MODELS
from pipelines.train import run_config, train

VAE = MODELS / "vae" / "model.pt"


def main() -> None:
    train("norld", train_norld, run_config(NoRLDRunConfig, "norld", "norld", {"vae": str(VAE)}))


if __name__ == "__main__":
    main()
