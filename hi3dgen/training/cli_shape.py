"""`hi3dgen train vae`, `hi3dgen train norld`, `hi3dgen eval norld`, `hi3dgen generate`.

The `train` and `eval` groups belong to `hi3dgen.training.cli`; this module adds its models to them
through `add_train_command` / `add_eval_command`.
"""

from __future__ import annotations

import dataclasses
import json

from hi3dgen.training.cli import (add_eval_command, add_image_args, add_train_command, add_trainer_args,
                                  apply_trainer_args, report_files)


def _shape_trainer_args(p) -> None:
    add_trainer_args(p, "a shape shard dir, or `toy` for analytic shapes")
    p.add_argument("--preset", default="base", choices=("tiny", "small", "base"))


def _sampling_args(p) -> None:
    p.add_argument("--steps", type=int, default=25, help="Euler steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", type=int, default=129, help="marching-cubes grid points per side")
    p.add_argument("--device", default="auto")


def register(subparsers) -> None:
    p = add_train_command(subparsers, "vae", help="train the shape VAE on shape shards")
    _shape_trainer_args(p)
    p.set_defaults(func=_train_vae)

    p = add_train_command(subparsers, "norld", help="train NoRLD (flow matching + online normal regularizer)")
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
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="the models registered by an MLflow run (a `hi3dgen run` or its stages) instead of paths")
    p.add_argument("--nirne", help="NiRNE checkpoint (RUN/model.pt or RUN/checkpoints/last.pt)")
    p.add_argument("--vae", help="shape VAE (RUN/model.pt)")
    p.add_argument("--norld", help="NoRLD (RUN/model.pt)")
    p.add_argument("--out", required=True, help="mesh.glb for one image, else a folder for <name>.glb (each with "
                                                "<name>.normal.png and <name>.preview.png; with --from-run, "
                                                "also in that run's artifacts)")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    _sampling_args(p)
    add_image_args(p)
    p.set_defaults(func=_generate)


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
    reg = {"weight": args.reg_weight, "share": args.reg_share, "t_min": args.reg_t_min, "t_max": args.reg_t_max,
           "views": args.reg_views, "max_samples": args.reg_samples, "render_size": args.render_size}
    cfg.reg = dataclasses.replace(cfg.reg, **{k: v for k, v in reg.items() if v is not None})
    if args.reg_grid:
        cfg.reg.extract = ExtractConfig(resolution=args.reg_grid)
    fit_to_vae(cfg)
    metrics = train_norld(cfg, args.out)
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _eval_norld(args) -> int:
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.training.norld import SampleConfig, evaluate_checkpoints

    result = evaluate_checkpoints(args.norld, args.vae, args.data, args.out, split=args.split, limit=args.limit,
                                  sample=SampleConfig(args.steps, args.guidance, args.seed),
                                  extract=ExtractConfig(resolution=args.grid), device=args.device)
    print(json.dumps(result, indent=2))
    return 0


def _model_paths(args) -> tuple[str, str, str]:
    """NiRNE, VAE and NoRLD: the paths given, each one not given from `--from-run`'s registered models."""
    paths = {"nirne": args.nirne, "shape_vae": args.vae, "norld": args.norld}
    if args.from_run:
        from hi3dgen import tracking

        registered = tracking.registered_models(args.from_run)
        paths = {kind: path or registered.get(kind) for kind, path in paths.items()}
    missing = ", ".join(kind for kind, path in paths.items() if not path)
    if missing and args.from_run:
        raise SystemExit(f"hi3dgen generate: run {args.from_run} and its child runs registered no {missing} model; "
                         "give it with --nirne / --vae / --norld")
    if missing:
        raise SystemExit(f"hi3dgen generate: no {missing} model: give --from-run RUN_ID or --nirne / --vae / --norld")
    return paths["nirne"], paths["shape_vae"], paths["norld"]


def _generate(args) -> int:
    from hi3dgen.generate import GenerateConfig, Generator, generate_files
    from hi3dgen.geometry.mesh_extract import ExtractConfig

    coarse = (args.grid - 1) // 4 + 1 if (args.grid - 1) % 4 == 0 and args.grid > 33 else 0
    cfg = GenerateConfig(steps=args.steps, guidance=args.guidance, seed=args.seed, device=args.device,
                         extract=ExtractConfig(resolution=args.grid, coarse=coarse))
    if args.max_pixels:
        cfg.max_pixels = args.max_pixels
    gen = Generator.load(*_model_paths(args), cfg)
    return report_files("generate", generate_files(gen, args.images, args.out, overwrite=args.overwrite,
                                                   run_id=args.from_run))
