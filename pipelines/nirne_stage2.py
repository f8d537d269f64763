"""DVC stage `nirne_stage2`: the clean stream frozen, the noisy stream fine-tuned on synthetic data."""

from pipelines.common import MODELS, params
from pipelines.nirne_stage1 import train_stage


def main() -> None:
    p = params("nirne")
    train_stage(2, p["stage2_domain"], p.get("steps2"), init=str(MODELS / "nirne_stage1" / "checkpoints" / "last.pt"))


if __name__ == "__main__":
    main()
