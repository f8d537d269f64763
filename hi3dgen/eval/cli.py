"""`hi3dgen eval nirne | norld`: a trained model's figures on a split of shards (or toy data)."""

from __future__ import annotations

import json

from hi3dgen.config import add_nested_command
from hi3dgen.data import DOMAIN_FILTERS
from hi3dgen.inference.cli import add_inference_args, add_sampling_args


def register(subparsers) -> None:
    p = add_nested_command(subparsers, "eval", "nirne", help="NE / SNE of a NiRNE checkpoint on view shards")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="a view shard dir, or `toy`")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--domain", default="any", choices=DOMAIN_FILTERS)
    p.add_argument("--limit", type=int, help="evaluate at most this many views")
    add_inference_args(p)
    p.set_defaults(func=_eval_nirne)

    p = add_nested_command(
        subparsers,
        "eval",
        "norld",
        help="generate from ground-truth normal maps of shape shards "
        "and score Chamfer, F-score, normal consistency, NE/SNE",
    )
    p.add_argument("--norld", required=True)
    p.add_argument("--vae", required=True)
    p.add_argument("--data", required=True, help="a shape shard dir, or `toy`")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--limit", type=int, default=64, help="evaluate at most this many shapes")
    add_sampling_args(p)
    p.set_defaults(func=_eval_norld)


def _eval_nirne(args) -> int:
    from hi3dgen.eval.nirne import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.out,
        split=args.split,
        domain=args.domain,
        device=args.device,
        max_side=args.max_side,
        limit=args.limit,
        use_ema=not args.no_ema,
    )
    print(json.dumps(result, indent=2))
    return 0


def _eval_norld(args) -> int:
    from hi3dgen.eval.norld import SampleConfig, evaluate_checkpoints
    from hi3dgen.geometry.mesh_extract import ExtractConfig

    result = evaluate_checkpoints(
        args.norld,
        args.vae,
        args.data,
        args.out,
        split=args.split,
        limit=args.limit,
        sample=SampleConfig(args.steps, args.guidance, args.seed),
        extract=ExtractConfig(resolution=args.grid),
        device=args.device,
    )
    print(json.dumps(result, indent=2))
    return 0
