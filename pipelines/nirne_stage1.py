"""DVC stage `nirne_stage1`: the whole NiRNE network on the real domain."""

from hi3dgen.training.launch import launch
from hi3dgen.training.nirne import preset_config, train_nirne
from pipelines.common import launch_config, SHARDS, params, run_dir, view_domains


def stage1_domain(requested: str) -> str:
    """`auto`: real views when the shards have any (ingested or imported pairs), else every
    domain, so a DetailVerse-only dataset still trains stage 1."""
    if requested != "auto":
        return requested
    return "real" if view_domains().get("real") else "any"


def main() -> None:
    p = params("nirne")
    cfg = preset_config(p["preset"], stage=1)
    cfg.data.shards = str(SHARDS)
    cfg.data.domain = stage1_domain(p["stage1_domain"])
    cfg.data.val_domain = "any"
    if p.get("steps1"):
        cfg.trainer.steps = p["steps1"]
    cfg.tracking.run_name = "nirne_stage1"
    launch(train_nirne, cfg, str(run_dir("nirne_stage1", cfg.to_dict())), launch_config())


if __name__ == "__main__":
    main()
