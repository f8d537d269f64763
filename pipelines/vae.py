"""DVC stage `vae`: the shape VAE on the pipeline's shape shards."""

from hi3dgen.training.vae import preset_config, train_vae
from pipelines.common import params
from pipelines.train import train


def main() -> None:
    p = params("vae")
    train("vae", train_vae, preset_config(p["preset"]), p.get("steps"))


if __name__ == "__main__":
    main()
