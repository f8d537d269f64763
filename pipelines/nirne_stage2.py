"""DVC stage `nirne_stage2`: the clean stream frozen, the noisy stream fine-tuned on synthetic data."""

from hi3dgen.training.launch import launch
from hi3dgen.training.nirne import preset_config, train_nirne
from pipelines.common import launch_config, MODELS, SHARDS, params, run_dir


def main() -> None:
    p = params("nirne")
    cfg = preset_config(p["preset"], stage=2, init=str(MODELS / "nirne_stage1" / "checkpoints" / "last.pt"))
    cfg.data.shards = str(SHARDS)
    cfg.data.domain = p["stage2_domain"]
    cfg.data.val_domain = "any"
    if p.get("steps2"):
        cfg.trainer.steps = p["steps2"]
    cfg.tracking.run_name = "nirne_stage2"
    launch(train_nirne, cfg, str(run_dir("nirne_stage2", cfg.to_dict())), launch_config())


if __name__ == "__main__":
    main()
