"""`hi3dgen train nirne`, `hi3dgen eval nirne`, `hi3dgen predict-normal`, `hi3dgen import-pairs`.

`train` and `eval` are groups of per-model sub-commands: another module adds its model from its
own `register(subparsers)` with `add_train_command(subparsers, "vae", help=...)` (or
`add_eval_command`), in any order relative to this one.
"""

from __future__ import annotations

import argparse
import sys

GROUP_HELP = {"train": "train a model (resumes from OUT/checkpoints/last.pt)", "eval": "evaluate a model"}


def add_nested_command(subparsers, group: str, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of `hi3dgen GROUP NAME`, creating the GROUP command on first use."""
    parent = subparsers.choices.get(group)
    if parent is None:
        parent = subparsers.add_parser(group, help=GROUP_HELP.get(group, group))
        parent.models = parent.add_subparsers(dest=f"{group}_model", required=True, metavar="MODEL")
    return parent.models.add_parser(name, help=help)


def add_train_command(subparsers, name: str, help: str) -> argparse.ArgumentParser:
    return add_nested_command(subparsers, "train", name, help)


def add_eval_command(subparsers, name: str, help: str) -> argparse.ArgumentParser:
    return add_nested_command(subparsers, "eval", name, help)


# Trainer and data fields a flag may override: flag name -> (config section, field, type, help).
TRAINER_FLAGS = {
    "steps": ("trainer", "steps", int, None),
    "batch-size": ("data", "batch_size", int, None),
    "workers": ("data", "workers", int, "DataLoader worker processes"),
    "device": ("trainer", "device", str, "auto | cpu | cuda"),
    "precision": ("trainer", "precision", str, "auto | bf16 | fp32"),
    "seed": ("trainer", "seed", int, None),
    **{f"{w}-every": ("trainer", f"{w}_every", int, "steps between them") for w in ("log", "val", "vis", "ckpt")},
}


def add_trainer_args(p: argparse.ArgumentParser, data_help: str) -> None:
    """The flags every `train MODEL` command shares (its `--preset` is its own)."""
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--out", required=True, help="the run dir (checkpoints/last.pt, model.pt)")
    for flag, (_, _, kind, text) in TRAINER_FLAGS.items():
        p.add_argument(f"--{flag}", type=kind, help=text)
    p.add_argument("--lr", type=float)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--experiment", help="MLflow experiment (default hi3dgen)")


def apply_trainer_args(cfg, args, run_name: str) -> None:
    """Flags given on the command line over the preset's values (a run config with `data`,
    `trainer` and `tracking` sections), checked, as is the MLflow server of a tracked run: before
    any work."""
    cfg.data.shards = args.data
    for flag, (section, field, _, _) in TRAINER_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            setattr(getattr(cfg, section), field, value)
    if args.no_compile:
        cfg.trainer.compile = False
    if args.lr is not None:
        cfg.trainer.optim.lr = args.lr
    cfg.tracking.enabled = not args.no_tracking
    cfg.tracking.run_name = run_name
    cfg.tracking.experiment = args.experiment or cfg.tracking.experiment
    cfg.trainer.__post_init__()
    if cfg.tracking.enabled:
        from hi3dgen import tracking

        tracking.preflight()


def register(subparsers) -> None:
    p = add_train_command(subparsers, "nirne", help="train NiRNE (stage 1 on real, stage 2 on synthetic)")
    add_trainer_args(p, "a view shard dir, or `toy` for procedural views")
    p.add_argument("--stage", type=int, choices=(1, 2), default=1)
    p.add_argument("--init", help="stage 2: the stage-1 checkpoint (RUN1/checkpoints/last.pt)")
    p.add_argument("--preset", default="base",
                   help="tiny | small | base | no_noise | single_stream | no_stage2, or a '+' list (tiny+no_noise)")
    p.add_argument("--domain", choices=("real", "synthetic", "any"), help="default: real (stage 1), synthetic (stage 2)")
    p.add_argument("--val-domain", choices=("real", "synthetic", "any"))
    p.add_argument("--loss", choices=("l2", "angular"))
    p.add_argument("--resolution", type=int, help="training crop size")
    p.set_defaults(func=_train_nirne)

    p = add_eval_command(subparsers, "nirne", help="NE / SNE of a NiRNE checkpoint on view shards")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="a view shard dir, or `toy`")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--domain", default="any", choices=("real", "synthetic", "any"))
    p.add_argument("--limit", type=int, help="evaluate at most this many views")
    _inference_args(p)
    p.set_defaults(func=_eval_nirne)

    p = subparsers.add_parser("predict-normal", help="NiRNE normal maps for images (16-bit PNG + preview)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True,
                   help="folder for <name>.normal.png and <name>.preview.png (name: the image's path "
                        "relative to the images' common folder, without its suffix)")
    p.add_argument("images", nargs="+")
    _inference_args(p)
    add_image_args(p)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser("import-pairs", help="image / normal-map pairs -> view shards of one domain")
    p.add_argument("--images", required=True)
    p.add_argument("--normals", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--domain", default="real", choices=("real", "synthetic"))
    p.add_argument("--convention", default="opengl", choices=("opengl", "opencv"))
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--samples-per-shard", type=int, default=512)
    p.add_argument("--fov-deg", type=float, default=60.0)
    p.set_defaults(func=_import_pairs)


def _inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto")
    p.add_argument("--max-side", type=int, default=1024, help="larger images run downscaled")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")


def add_image_args(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that read image files."""
    p.add_argument("--max-pixels", type=int, help="larger images are refused (default 40 million)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that are there already")


def nirne_config_from_args(args):
    """The run config: preset, then the flags given on the command line."""
    from hi3dgen.training.nirne import preset_config

    top = {"stage": args.stage, "init": args.init}
    if args.loss:
        top["loss"] = args.loss
    cfg = preset_config(args.preset, **top)
    apply_trainer_args(cfg, args, f"nirne_stage{args.stage}")
    cfg.data.domain, cfg.data.val_domain = args.domain, args.val_domain
    if args.resolution:
        cfg.data.augment.resolution = args.resolution
    cfg.__post_init__()
    return cfg


def _train_nirne(args) -> int:
    from hi3dgen.training.nirne import train_nirne

    metrics = train_nirne(nirne_config_from_args(args), args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _eval_nirne(args) -> int:
    import json

    from hi3dgen.eval.nirne import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.out, split=args.split, domain=args.domain,
                                 device=args.device, max_side=args.max_side, limit=args.limit, use_ema=not args.no_ema)
    print(json.dumps(result, indent=2))
    return 0


def _predict(args) -> int:
    from hi3dgen.training.predict import MAX_PIXELS, load_nirne, predict_files
    from hi3dgen.training.trainer import resolve_device

    model = load_nirne(args.checkpoint, resolve_device(args.device), use_ema=not args.no_ema)
    results = predict_files(model, args.images, args.out, args.max_side, max_pixels=args.max_pixels or MAX_PIXELS,
                            overwrite=args.overwrite)
    return report_files("predict-normal", results)


def report_files(command: str, results) -> int:
    """Print each input with its output, or its error on stderr; exit code 1 when any failed."""
    failed = 0
    for path, output, error in results:
        if error:
            failed += 1
            print(f"hi3dgen {command}: {path}: {error}", file=sys.stderr)
        else:
            print(f"{path} -> {output}")
    return 1 if failed else 0


def _import_pairs(args) -> int:
    from hi3dgen.training.pairs import PairsConfig, import_pairs

    cfg = PairsConfig(domain=args.domain, convention=args.convention, val_fraction=args.val_fraction,
                      samples_per_shard=args.samples_per_shard, fov_deg=args.fov_deg)
    index = import_pairs(args.images, args.normals, args.out, cfg)
    print(f"{index['totals']['accepted']} pairs in {args.out} "
          f"(train {index['sets']['views']['train']['samples']}, val {index['sets']['views']['val']['samples']}), "
          f"{index['totals']['rejected']} rejected (see manifest.jsonl)")
    return 0
