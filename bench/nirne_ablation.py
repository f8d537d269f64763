"""The NiRNE ablation grid (the paper's Table 3): the full method against `no_noise`, `single_stream`
and `no_stage2`, with the same data, the same total steps and the same seed, scored by NE / SNE on
held-out views of each domain.

Two-stage variants spend `stage1_share` of the steps in stage 1 (real) and the rest in stage 2
(synthetic, clean stream frozen); `no_stage2` spends all of them in one stage on both domains.

    python bench/nirne_ablation.py --out DIR [--preset small] [--steps 1500] [--data toy]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hi3dgen import io  # noqa: E402
from hi3dgen.data.views import ViewDataConfig, eval_views  # noqa: E402
from hi3dgen.device import resolve_device  # noqa: E402
from hi3dgen.eval.nirne import evaluate_views  # noqa: E402
from hi3dgen.inference.checkpoints import load_nirne  # noqa: E402
from hi3dgen.training.nirne import preset_config, train_nirne  # noqa: E402

VARIANTS = ("full", "no_noise", "single_stream", "no_stage2")


@dataclasses.dataclass
class AblationConfig:
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
    spec = acfg.preset if variant == "full" else f"{acfg.preset}+{variant}"
    cfg = preset_config(spec, stage=stage, init=init)
    cfg.data = dataclasses.replace(cfg.data, shards=acfg.data)
    cfg.trainer = dataclasses.replace(
        cfg.trainer, steps=steps, compile=acfg.compile, device=acfg.device, ckpt_every=steps
    )
    cfg.tracking.enabled = False
    return cfg


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
    size = preset_config(acfg.preset).data
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--data", default="toy")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--val-views", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    acfg = AblationConfig(
        out=a.out,
        preset=a.preset,
        data=a.data,
        steps=a.steps,
        variants=tuple(a.variants),
        val_views=a.val_views,
        device=a.device,
        compile=a.compile,
    )
    print(table(run_ablation(acfg)))


if __name__ == "__main__":
    main()
