"""`hi3dgen eval nirne`: a checkpoint's NE / SNE on a split of view shards (or of the toy views),
each view predicted at its own resolution, as at inference."""

from __future__ import annotations

import os
from collections.abc import Iterable

from hi3dgen import io
from hi3dgen.data.views import ViewDataConfig, eval_views
from hi3dgen.device import resolve_device
from hi3dgen.eval.normals import NormalMetrics, NormalMetricsConfig
from hi3dgen.inference.checkpoints import load_nirne
from hi3dgen.inference.predict import Predictor, predict_image
from hi3dgen.models.nirne import NiRNE


def evaluate_views(
    model: NiRNE,
    views: Iterable[dict],
    cfg: NormalMetricsConfig | None = None,
    max_side: int | None = 1024,
    limit: int | None = None,
) -> dict[str, float]:
    metrics = NormalMetrics(cfg)
    predictor = Predictor(model)
    for i, view in enumerate(views):
        if limit is not None and i >= limit:
            break
        if "image" not in view:
            raise ValueError(f"view {view.get('key')!r} has no image (rgb.png): render the shards with an RGB backend")
        pred = predict_image(predictor, view["image"].transpose(1, 2, 0), max_side)
        metrics.add(pred.transpose(2, 0, 1), view["normal"], view["mask"])
    if not metrics.images:
        raise ValueError("no views to evaluate")
    return metrics.result()


def evaluate_checkpoint(
    checkpoint: str,
    data: str,
    out: str | os.PathLike | None = None,
    split: str = "val",
    domain: str = "any",
    device: str = "auto",
    max_side: int | None = 1024,
    limit: int | None = None,
    use_ema: bool = True,
) -> dict:
    """Metrics of `checkpoint` on `data` (a shard dir or `toy`) and what they were measured on; the
    metrics alone are written to `out` as JSON when given (numbers only, so a DVC metrics file is the
    same in every clone and `dvc metrics diff` compares runs)."""
    model = load_nirne(checkpoint, resolve_device(device), use_ema)
    result = evaluate_views(
        model, eval_views(ViewDataConfig(shards=data), split, domain), max_side=max_side, limit=limit
    )
    result = io.nan_to_none(result)
    if out is not None:
        io.write_json(out, result)
    return {**result, "checkpoint": str(checkpoint), "data": str(data), "split": split, "domain": domain}
