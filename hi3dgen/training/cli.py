"""`hi3dgen train nirne | vae | norld`: the training commands and the flags they share."""

from __future__ import annotations

import argparse
import dataclasses

from hi3dgen.config import add_nested_command
from hi3dgen.data import DOMAIN_FILTERS

# Trainer and data fields a flag may override: flag name -> (config section, field, type, help).
TRAINER_FLAGS = {
    "steps": ("trainer", "steps", int, None),
    "batch-size": ("data", "batch_size", int, None),
    "workers": ("data", "workers", int, "DataLoader worker processes"),
    "device": ("trainer", "device", str, "auto | cpu | cuda"),
    "precision": ("trainer", "precision", str, "auto | bf16 | fp32"),
    "seed": ("trainer", "seed", int, None),
    **{f"{w}-every": ("trainer", f"{w}_every", int, "steps between them") for w in ("log", "val", "vis", "ckpt")},
    "keep-last": ("trainer", "keep_last", int, "step checkpoints kept (0: all)"),
    "grad-accum": ("trainer", "grad_accum", int, "micro-batches per optimizer step"),
    "best-metric": ("trainer", "best_metric", str, "val metric of checkpoints/best.pt (auto: the task's; '': none)"),
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


def _shape_trainer_args(p) -> None:
    add_trainer_args(p, "a shape shard dir, or `toy` for analytic shapes")
    p.add_argument("--preset", default="base", choices=("tiny", "small", "base"))


def register(subparsers) -> None:
    p = add_nested_command(subparsers, "train", "nirne", help="train NiRNE (stage 1 on real, stage 2 on synthetic)")
    add_trainer_args(p, "a view shard dir, or `toy` for procedural views")
    p.add_argument("--stage", type=int, choices=(1, 2), default=1)
    p.add_argument("--init", help="stage 2: the stage-1 checkpoint (RUN1/checkpoints/last.pt)")
    p.add_argument(
        "--preset",
        default="base",
        help="tiny | small | base | no_noise | single_stream | no_stage2, or a '+' list (tiny+no_noise)",
    )
    p.add_argument("--domain", choices=DOMAIN_FILTERS, help="default: real (stage 1), synthetic (stage 2)")
    p.add_argument("--val-domain", choices=DOMAIN_FILTERS)
    p.add_argument("--loss", choices=("l2", "angular"))
    p.add_argument("--resolution", type=int, help="training crop size")
    p.set_defaults(func=_train_nirne)

    p = add_nested_command(subparsers, "train", "vae", help="train the shape VAE on shape shards")
    _shape_trainer_args(p)
    p.set_defaults(func=_train_vae)

    p = add_nested_command(subparsers, "train", "norld", help="train NoRLD (flow matching + online normal regularizer)")
    _shape_trainer_args(p)
    p.add_argument("--vae", required=True, help="the trained shape VAE (VAE_RUN/model.pt)")
    p.add_argument("--reg-weight", type=float, help="λ of the normal regularizer (0: off)")
    p.add_argument("--reg-share", type=float, help="share of steps the regularizer runs on")
    p.add_argument("--reg-t-min", type=float)
    p.add_argument("--reg-t-max", type=float)
    p.add_argument("--reg-views", type=int, help="ground-truth views rendered per regularized sample")
    p.add_argument("--reg-samples", type=int, help="regularized samples per step")
    p.add_argument("--reg-grid", type=int, help="marching-cubes grid of the regularizer")
    p.add_argument("--render-size", type=int, help="render resolution of the regularizer")
    p.set_defaults(func=_train_norld)


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


def _train_vae(args) -> int:
    from hi3dgen.training.vae import preset_config, train_vae

    cfg = preset_config(args.preset)
    apply_trainer_args(cfg, args, "shape_vae")
    metrics = train_vae(cfg, args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _train_norld(args) -> int:
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.training.norld import fit_to_vae, preset_config, train_norld

    cfg = preset_config(args.preset, args.vae)
    apply_trainer_args(cfg, args, "norld")
    reg = {
        "weight": args.reg_weight,
        "share": args.reg_share,
        "t_min": args.reg_t_min,
        "t_max": args.reg_t_max,
        "views": args.reg_views,
        "max_samples": args.reg_samples,
        "render_size": args.render_size,
    }
    cfg.reg = dataclasses.replace(cfg.reg, **{k: v for k, v in reg.items() if v is not None})
    if args.reg_grid:
        cfg.reg.extract = ExtractConfig(resolution=args.reg_grid)
    fit_to_vae(cfg)
    metrics = train_norld(cfg, args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0
