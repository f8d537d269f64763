"""DVC stage `nirne_stage1`: the whole NiRNE network on the real domain."""

from hi3dgen.training.nirne import NiRNERunConfig, train_nirne
from pipelines.common import params
from pipelines.train import run_config, train, view_domains

STAGE_KEYS = ("stage1_domain", "stage2_domain", "steps1", "steps2")  # params.yaml `nirne` beside preset, overrides


def stage1_domain(requested: str) -> str:
    """`auto`: real views when the shards have any (ingested or imported pairs), else every
    domain, so a DetailVerse-only dataset still trains stage 1."""
    if requested != "auto":
        return requested
    return "real" if view_domains().get("real") else "any"


def train_stage(stage: int, domain: str, steps: int | None, init: str | None = None) -> None:
    """One NiRNE stage on the pipeline's shards, in outputs/models/nirne_stage<stage>."""
    name = f"nirne_stage{stage}"
    stage_fields = {"stage": stage, "init": init, "data": {"domain": domain, "val_domain": "any"}}
    if steps:
        stage_fields["trainer"] = {"steps": steps}
    train(name, train_nirne, run_config(NiRNERunConfig, "nirne", name, stage_fields, keys=STAGE_KEYS))


def main() -> None:
    p = params("nirne")
    train_stage(1, stage1_domain(p["stage1_domain"]), p.get("steps1"))


if __name__ == "__main__":
    main()
