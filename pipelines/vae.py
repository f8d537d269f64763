"""DVC stage `vae`: the shape VAE on the pipeline's shape shards."""

from hi3dgen.training.vae import VAERunConfig, train_vae
from pipelines.train import run_config, train


def main() -> None:
    train("vae", train_vae, run_config(VAERunConfig, "vae", "vae"))


if __name__ == "__main__":
    main()
