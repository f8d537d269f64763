"""`hi3dgen render --in DIR --out DIR --backend embree|blender|nvdiffrast --views V --resolution R`"""

from __future__ import annotations

import sys


def register(sub) -> None:
    from hi3dgen.parallel import add_executor_args
    from hi3dgen.render.backend import BACKENDS
    from hi3dgen.render.stage import NVDIFFRAST_GPUS_PER_TASK, RenderConfig

    d = RenderConfig
    p = sub.add_parser("render", help="render normal, mask, depth and RGB views of each asset")
    p.add_argument("--in", dest="in_dir", required=True, help="a stage output with manifest.jsonl")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=d.backend,
        help="embree: CPU ray casting (default); blender: Cycles, photoreal RGB; nvdiffrast: CUDA rasterization",
    )
    p.add_argument("--views", type=int, default=d.views, help="views per asset")
    p.add_argument("--resolution", type=int, default=d.resolution, help="image side in pixels")
    p.add_argument("--fov", type=float, default=d.fov_deg, help="field of view in degrees")
    p.add_argument(
        "--elevation",
        type=float,
        nargs=2,
        default=d.elevation_deg,
        metavar=("LOW", "HIGH"),
        help="camera elevation range in degrees",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed of cameras, materials, lights")
    p.add_argument("--no-rgb", dest="rgb", action="store_false", help="skip rgb.png")
    p.add_argument("--samples", type=int, default=d.samples, help="blender: Cycles samples")
    p.add_argument(
        "--gpus-per-task",
        type=float,
        default=0.0,
        help=f"GPU share of one asset's Ray task (0: nvdiffrast takes {NVDIFFRAST_GPUS_PER_TASK})",
    )
    add_executor_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from hi3dgen.parallel import executor_from_args
    from hi3dgen.render.stage import RenderConfig, render_assets

    cfg = RenderConfig(
        backend=args.backend,
        views=args.views,
        resolution=args.resolution,
        fov_deg=args.fov,
        elevation_deg=tuple(args.elevation),
        seed=args.seed,
        rgb=args.rgb,
        samples=args.samples,
    )
    try:
        render_assets(args.in_dir, args.out, cfg, executor_from_args(args, gpus_per_task=args.gpus_per_task))
    except RuntimeError as exc:  # the backend cannot run on this machine
        print(f"hi3dgen render: error: {exc}", file=sys.stderr)
        return 2
    return 0
