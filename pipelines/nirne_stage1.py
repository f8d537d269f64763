"""DVC stage `nirne_stage1`: the whole NiRNE network on the real domain."""

from hi3dgen.training.launch import launch
from hi3dgen.training.nirne import preset_config, train_nirne
from pipelines.common import SHARDS, launch_config, params, run_dir, view_domains


def stage1_domain(requested: str) -> str:
    """`auto`: real views when the shards have any (ingested or imported pairs), else every
    domain, so a DetailVerse-only dataset still trains stage 1."""
    if requested != "auto":
        return requested
    return "real" if view_domains().get("real") else "any"


def train_stage(stage: int, domain: str, steps: int | None, init: str | None = None) -> None:
    """One NiRNE stage on the pipeline's shards, in outputs/models/nirne_stage<stage>."""
    cfg = preset_config(params("nirne")["preset"], stage=stage, init=init)
    cfg.data.shards = str(SHARDS)
    cfg.data.domain = domain
    cfg.data.val_domain = "any"
    if steps:
        cfg.trainer.steps = steps
    cfg.tracking.run_name = f"nirne_stage{stage}"
    launch(train_nirne, cfg, str(run_dir(f"nirne_stage{stage}", cfg.to_dict())), launch_config())


def main() -> None:
    p = params("nirne")
    train_stage(1, stage1_domain(p["stage1_domain"]), p.get("steps1"))


if __name__ == "__main__":
    main()
