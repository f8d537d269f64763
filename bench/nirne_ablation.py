"""The NiRNE ablation grid (the paper's Table 3): the full method against `no_noise`, `single_stream`
and `no_stage2`, with the same data, the same total steps and the same seed, scored by NE / SNE on
held-out views of each domain.

Two-stage variants spend `stage1_share` of the steps in stage 1 (real) and the rest in stage 2
(synthetic, clean stream frozen); `no_stage2` spends all of them in one stage on both domains.

    python bench/nirne_ablation.py --out DIR [--preset small] [--steps 1500] [--data toy] [--variants full no-noise]
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hi3dgen import io  # noqa: E402
from hi3dgen.config import build  # noqa: E402
from hi3dgen.data.views import ViewDataConfig, eval_views  # noqa: E402
from hi3dgen.device import resolve_device  # noqa: E402
from hi3dgen.eval.nirne import evaluate_views  # noqa: E402
from hi3dgen.inference.checkpoints import load_nirne  # noqa: E402
from hi3dgen.training.nirne import NiRNERunConfig, train_nirne  # noqa: E402

# Each variant: fields of the run config over the preset's.
ABLATIONS = {
    "full": {},
    "no_noise": {"model.noise.enabled": False},
    "single_stream": {"model.dual_stream": False},
    "no_stage2": {"stages": [1]},
}
VARIANTS = tuple(ABLATIONS)


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """The NiRNE ablation grid."""

    out: str
    preset: str = "small"
    data: str = "toy"  # a shard dir with both domains, or toy views
    steps: int = 1500
    stage1_share: float = 0.6
    variants: tuple[str, ...] = VARIANTS
    val_views: int = 256  # per domain
    device: str = "auto"
    compile: bool = False  # compiling each stage of each variant costs more than it saves at this scale


def _run_config(acfg: AblationConfig, variant: str, stage: int, steps: int, init: str | None):
    trainer = {"steps": steps, "compile": acfg.compile, "device": acfg.device, "ckpt_every": steps}
    run = {"stage": stage, "init": init, "data.shards": acfg.data, "trainer": trainer, "tracking.enabled": False}
    return build(NiRNERunConfig, acfg.preset, ABLATIONS[variant], run)


def run_variant(acfg: AblationConfig, variant: str) -> dict:
    """Train one variant to the end; returns its final model path and time."""
    root = Path(acfg.out) / variant
    t0 = time.perf_counter()
    if variant == "no_stage2":
        train_nirne(_run_config(acfg, variant, 1, acfg.steps, None), str(root / "stage1"))
        final = root / "stage1"
    else:
        s1 = round(acfg.steps * acfg.stage1_share)
        train_nirne(_run_config(acfg, variant, 1, s1, None), str(root / "stage1"))
        init = str(root / "stage1" / "checkpoints" / "last.pt")
        train_nirne(_run_config(acfg, variant, 2, acfg.steps - s1, init), str(root / "stage2"))
        final = root / "stage2"
    return {"model": str(final / "model.pt"), "train_s": time.perf_counter() - t0}


def score(acfg: AblationConfig, model_path: str) -> dict:
    """NE / SNE (and the rest) on the val views of each domain, each view at full resolution."""
    model = load_nirne(model_path, resolve_device(acfg.device))
    size = build(NiRNERunConfig, acfg.preset).data
    data = ViewDataConfig(shards=acfg.data, toy_size=size.toy_size, val_samples=acfg.val_views)
    return {d: evaluate_views(model, eval_views(data, "val", d), limit=acfg.val_views) for d in ("real", "synthetic")}


def table(results: dict) -> str:
    lines = ["| variant | NE real | SNE real | NE synthetic | SNE synthetic | train s |", "|---|---|---|---|---|---|"]
    for v, r in results.items():
        lines.append(
            f"| {v} | {r['real']['NE']:.2f} | {r['real']['SNE']:.2f} | {r['synthetic']['NE']:.2f} | "
            f"{r['synthetic']['SNE']:.2f} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)


def run_ablation(acfg: AblationConfig) -> dict:
    results = {}
    for variant in acfg.variants:
        results[variant] = run_variant(acfg, variant)
        results[variant].update(score(acfg, results[variant]["model"]))
        io.write_json(Path(acfg.out) / "ablation.json", {"config": dataclasses.asdict(acfg), "results": results})
        print(table({variant: results[variant]}).splitlines()[-1], flush=True)
    return results


def main() -> None:
    acfg = tyro.cli(AblationConfig)
    print(table(run_ablation(acfg)))


if __name__ == "__main__":
    main()
