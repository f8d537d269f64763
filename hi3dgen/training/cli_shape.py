"""`hi3dgen train vae`, `hi3dgen train norld`, `hi3dgen eval norld`, `hi3dgen generate`.

The `train` and `eval` groups belong to `hi3dgen.training.cli`; this module adds its models to them
through `add_train_command` / `add_eval_command`.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from hi3dgen.training.cli import add_eval_command, add_train_command


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


def _trainer_args(p) -> None:
    p.add_argument("--data", required=True, help="a shape shard dir, or `toy` for analytic shapes")
    p.add_argument("--out", required=True, help="the run dir (checkpoints/last.pt, model.pt)")
    p.add_argument("--preset", default="base", choices=("tiny", "small", "base"))
    for flag, (_, _, kind, text) in TRAINER_FLAGS.items():
        p.add_argument(f"--{flag}", type=kind, help=text)
    p.add_argument("--lr", type=float)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--experiment", help="MLflow experiment (default hi3dgen)")


def _apply_trainer_args(cfg, args, run_name: str) -> None:
    """Flags given on the command line over the preset's values (data, trainer, tracking)."""
    cfg.data.shards = args.data
    for flag, (section, field, _, _) in TRAINER_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            setattr(getattr(cfg, section), field, value)
    if args.no_compile:
        cfg.trainer.compile = False
    if args.lr:
        cfg.trainer.optim.lr = args.lr
    cfg.tracking.enabled = not args.no_tracking
    cfg.tracking.run_name = run_name
    cfg.tracking.experiment = args.experiment or cfg.tracking.experiment


def _sampling_args(p) -> None:
    p.add_argument("--steps", type=int, default=25, help="Euler steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", type=int, default=129, help="marching-cubes grid points per side")
    p.add_argument("--device", default="auto")


def register(subparsers) -> None:
    p = add_train_command(subparsers, "vae", help="train the shape VAE on shape shards")
    _trainer_args(p)
    p.set_defaults(func=_train_vae)

    p = add_train_command(subparsers, "norld", help="train NoRLD (flow matching + online normal regularizer)")
    _trainer_args(p)
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

    p = add_eval_command(subparsers, "norld", help="generate from ground-truth normal maps of shape shards "
                                                   "and score Chamfer, F-score, normal consistency, NE/SNE")
    p.add_argument("--norld", required=True)
    p.add_argument("--vae", required=True)
    p.add_argument("--data", required=True, help="a shape shard dir, or `toy`")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--limit", type=int, default=64, help="evaluate at most this many shapes")
    _sampling_args(p)
    p.set_defaults(func=_eval_norld)

    p = subparsers.add_parser("generate", help="image -> NiRNE normal map -> NoRLD -> mesh (GLB)")
    p.add_argument("--nirne", required=True)
    p.add_argument("--vae", required=True)
    p.add_argument("--norld", required=True)
    p.add_argument("--out", required=True, help="mesh.glb for one image, else a folder for <stem>.glb")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    _sampling_args(p)
    p.set_defaults(func=_generate)


def _train_vae(args) -> int:
    from hi3dgen.training.vae import preset_config, train_vae

    cfg = preset_config(args.preset)
    _apply_trainer_args(cfg, args, "shape_vae")
    metrics = train_vae(cfg, args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _train_norld(args) -> int:
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.training.norld import fit_to_vae, preset_config, train_norld

    cfg = preset_config(args.preset, args.vae)
    _apply_trainer_args(cfg, args, "norld")
    reg = {"weight": args.reg_weight, "share": args.reg_share, "t_min": args.reg_t_min, "t_max": args.reg_t_max,
           "views": args.reg_views, "max_samples": args.reg_samples, "render_size": args.render_size}
    cfg.reg = dataclasses.replace(cfg.reg, **{k: v for k, v in reg.items() if v is not None})
    if args.reg_grid:
        cfg.reg.extract = ExtractConfig(resolution=args.reg_grid)
    fit_to_vae(cfg)
    metrics = train_norld(cfg, args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _device(name: str):
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


def _eval_norld(args) -> int:
    from hi3dgen import io
    from hi3dgen.eval.normals import NormalMetricsConfig
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.models import norld, shape_vae
    from hi3dgen.training.norld import SampleConfig, evaluate_generation
    from hi3dgen.training.vae import ShapeDataConfig, val_samples

    device = _device(args.device)
    model, vae = norld.load(args.norld, device), shape_vae.load(args.vae, device)
    samples = val_samples(ShapeDataConfig(shards=args.data, val_shapes=args.limit), split=args.split)
    result = evaluate_generation(model, vae, samples, SampleConfig(args.steps, args.guidance, args.seed),
                                 ExtractConfig(resolution=args.grid), NormalMetricsConfig(), device)
    result["shapes"] = len(samples)
    io.write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def _generate(args) -> int:
    from hi3dgen.generate import GenerateConfig, Generator, generate_files
    from hi3dgen.geometry.mesh_extract import ExtractConfig

    coarse = (args.grid - 1) // 4 + 1 if (args.grid - 1) % 4 == 0 and args.grid > 33 else 0
    cfg = GenerateConfig(steps=args.steps, guidance=args.guidance, seed=args.seed, device=args.device,
                         extract=ExtractConfig(resolution=args.grid, coarse=coarse))
    gen = Generator.load(args.nirne, args.vae, args.norld, cfg)
    failed = 0
    for path, error in generate_files(gen, args.images, args.out):
        if error:
            failed += 1
            print(f"hi3dgen generate: {path}: {error}", file=sys.stderr)
        else:
            print(path)
    return 1 if failed else 0
