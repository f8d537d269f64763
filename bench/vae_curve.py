"""The shape VAE's validation curve: a run from a preset and JSON overrides, its val metrics
(F-score@1%, normal consistency, Chamfer against the val meshes; SDF sign accuracy) at every
evaluation with the training seconds so far, and the train log, written to OUT/vae_curve.json as
they come (a run cut off by a time limit keeps what it reached). Tracking is off: the GPU machine
has no MLflow.

    python3 bench/vae_curve.py gpu OUT '{"data": {"shards": "DIR/shard"}, "trainer": {"val_every": 1000}}'
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hi3dgen.config import build  # noqa: E402
from hi3dgen.models.shape_vae import ShapeVAE  # noqa: E402
from hi3dgen.training.trainer import init_distributed  # noqa: E402
from hi3dgen.training.vae import VAERunConfig, VAETrainer, build_data  # noqa: E402


def main() -> None:
    preset, out, overrides = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3] if len(sys.argv) > 3 else "{}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = build(VAERunConfig, preset, {"tracking.enabled": False}, overrides)
    init_distributed(cfg.trainer.device)
    torch.manual_seed(cfg.trainer.seed)
    trainer = VAETrainer(cfg, ShapeVAE(cfg.model), build_data(cfg.data, cfg.trainer.seed), out / "run")
    start, curve = time.perf_counter(), []
    evaluate = trainer._run_evaluate

    def save(**extra) -> None:
        result = {"preset": preset, "overrides": overrides, "val": curve, "train": trainer.history, **extra}
        (out / "vae_curve.json").write_text(json.dumps(result, indent=1))

    def recorded():
        began = time.perf_counter()
        metrics = evaluate()
        seconds = {"train_seconds": began - start, "eval_seconds": time.perf_counter() - began}
        curve.append({"step": trainer.step, **seconds, **metrics})
        print("VAL", json.dumps(curve[-1]), flush=True)
        save()
        return metrics

    trainer._run_evaluate = recorded
    trainer.train()
    save(seconds=time.perf_counter() - start)
    print("DONE", f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
