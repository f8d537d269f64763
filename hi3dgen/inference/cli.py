"""`hi3dgen predict-normal` and `hi3dgen generate`, and the flags the inference and evaluation
commands share."""

from __future__ import annotations

import argparse
import sys


def add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto")
    p.add_argument("--max-side", type=int, default=1024, help="larger images run downscaled")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")


def add_image_args(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that read image files."""
    p.add_argument("--max-pixels", type=int, help="larger images are refused (default 40 million)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that are there already")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """NoRLD sampling and mesh extraction (generate, eval norld)."""
    p.add_argument("--steps", type=int, default=25, help="Euler steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", type=int, default=129, help="marching-cubes grid points per side")
    p.add_argument("--device", default="auto")


def register(subparsers) -> None:
    p = subparsers.add_parser("predict-normal", help="NiRNE normal maps for images (16-bit PNG + preview)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--out",
        required=True,
        help="folder for <name>.normal.png and <name>.preview.png (name: the image's path "
        "relative to the images' common folder, without its suffix)",
    )
    p.add_argument("images", nargs="+")
    add_inference_args(p)
    add_image_args(p)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser("generate", help="image -> NiRNE normal map -> NoRLD -> mesh (GLB)")
    p.add_argument(
        "--from-run",
        metavar="RUN_ID",
        help="the models registered by an MLflow run (a `hi3dgen run` or its stages) instead of paths",
    )
    p.add_argument("--nirne", help="NiRNE checkpoint (RUN/model.pt or RUN/checkpoints/last.pt)")
    p.add_argument("--vae", help="shape VAE (RUN/model.pt)")
    p.add_argument("--norld", help="NoRLD (RUN/model.pt)")
    p.add_argument(
        "--out",
        required=True,
        help="mesh.glb for one image, else a folder for <name>.glb (each with "
        "<name>.normal.png and <name>.preview.png; with --from-run, "
        "also in that run's artifacts)",
    )
    p.add_argument("images", nargs="+", help="image files or folders of images")
    add_sampling_args(p)
    add_image_args(p)
    p.set_defaults(func=_generate)


def _predict(args) -> int:
    from hi3dgen.device import resolve_device
    from hi3dgen.images import MAX_PIXELS
    from hi3dgen.inference.checkpoints import load_nirne
    from hi3dgen.inference.predict import predict_files

    model = load_nirne(args.checkpoint, resolve_device(args.device), use_ema=not args.no_ema)
    results = predict_files(
        model, args.images, args.out, args.max_side, max_pixels=args.max_pixels or MAX_PIXELS, overwrite=args.overwrite
    )
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


def _model_paths(args) -> tuple[str, str, str]:
    """NiRNE, VAE and NoRLD: the paths given, each one not given from `--from-run`'s registered models."""
    paths = {"nirne": args.nirne, "shape_vae": args.vae, "norld": args.norld}
    if args.from_run:
        from hi3dgen import tracking

        registered = tracking.registered_models(args.from_run)
        paths = {kind: path or registered.get(kind) for kind, path in paths.items()}
    missing = ", ".join(kind for kind, path in paths.items() if not path)
    if missing and args.from_run:
        raise SystemExit(
            f"hi3dgen generate: run {args.from_run} and its child runs registered no {missing} model; "
            "give it with --nirne / --vae / --norld"
        )
    if missing:
        raise SystemExit(f"hi3dgen generate: no {missing} model: give --from-run RUN_ID or --nirne / --vae / --norld")
    return paths["nirne"], paths["shape_vae"], paths["norld"]


def _generate(args) -> int:
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.inference.generate import GenerateConfig, Generator, generate_files

    coarse = (args.grid - 1) // 4 + 1 if (args.grid - 1) % 4 == 0 and args.grid > 33 else 0
    cfg = GenerateConfig(
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        device=args.device,
        extract=ExtractConfig(resolution=args.grid, coarse=coarse),
        **({"max_pixels": args.max_pixels} if args.max_pixels else {}),
    )
    gen = Generator.load(*_model_paths(args), cfg)
    return report_files(
        "generate", generate_files(gen, args.images, args.out, overwrite=args.overwrite, run_id=args.from_run)
    )
