"""`hi3dgen ingest`: external 3D assets (a local folder or Objaverse) into normalized asset GLBs."""

from __future__ import annotations

import dataclasses

from hi3dgen.data import DOMAINS
from hi3dgen.parallel import add_executor_args, executor_from_args
from hi3dgen.sources.sandbox import Limits

LIMIT_FLAGS = {  # Limits field -> (flag, type, help)
    "seconds": ("--timeout", float, "seconds to load one file"),
    "memory_mb": ("--memory-mb", int, "memory (MB) one file's loader may use"),
    "max_file_mb": ("--max-file-mb", float, "larger files are rejected unread"),
    "max_faces": ("--max-faces", int, "meshes with more faces are rejected"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="external 3D assets into normalized asset GLBs", description=__doc__)
    p.add_argument("--source", choices=("local", "objaverse"), required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (assets/ and manifest.jsonl)")
    p.add_argument("--path", metavar="SRC", help="local: a folder (searched recursively) or one 3D file")
    p.add_argument(
        "--up-axis",
        choices=("y", "z"),
        default="y",
        help="local: the up axis of the source files; z is turned to +Y up",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--uids", metavar="FILE", help="objaverse: a file with one uid per line")
    g.add_argument("--limit", type=int, metavar="N", help="objaverse: the first N uids of the index, sorted")
    p.add_argument("--cache-dir", metavar="DIR", help="objaverse: the package's cache folder (default ~/.objaverse)")
    p.add_argument(
        "--no-download", action="store_true", help="objaverse: use only what the cache holds; never touch the network"
    )
    limits = p.add_argument_group("per-file limits")
    for field in dataclasses.fields(Limits):
        flag, kind, text = LIMIT_FLAGS[field.name]
        limits.add_argument(
            flag, dest=field.name, type=kind, default=field.default, help=f"{text} (default {field.default})"
        )
    add_executor_args(p)
    p.set_defaults(func=run)

    p = subparsers.add_parser("import-pairs", help="image / normal-map pairs -> view shards of one domain")
    p.add_argument("--images", required=True)
    p.add_argument("--normals", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--domain", default="real", choices=DOMAINS)
    p.add_argument("--convention", default="opengl", choices=("opengl", "opencv"))
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--samples-per-shard", type=int, default=512)
    p.add_argument("--fov-deg", type=float, default=60.0)
    p.set_defaults(func=_import_pairs)


def run(args) -> int:
    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    executor = executor_from_args(args)
    if args.source == "local":
        from hi3dgen.sources.local import ingest_local

        if not args.path:
            raise ValueError("--source local needs --path SRC")
        ingest_local(args.path, args.out, executor, limits, up_axis=args.up_axis)
        return 0
    from hi3dgen.sources.objaverse import ingest_objaverse

    if args.uids is None and args.limit is None:
        raise ValueError("--source objaverse needs --uids FILE or --limit N")
    ingest_objaverse(
        args.out,
        executor,
        limits,
        uids=args.uids,
        limit=args.limit,
        cache_dir=args.cache_dir,
        download=not args.no_download,
    )
    return 0


def _import_pairs(args) -> int:
    from hi3dgen.sources.pairs import PairsConfig, import_pairs

    cfg = PairsConfig(
        domain=args.domain,
        convention=args.convention,
        val_fraction=args.val_fraction,
        samples_per_shard=args.samples_per_shard,
        fov_deg=args.fov_deg,
    )
    index = import_pairs(args.images, args.normals, args.out, cfg)
    print(
        f"{index['totals']['accepted']} pairs in {args.out} "
        f"(train {index['sets']['views']['train']['samples']}, val {index['sets']['views']['val']['samples']}), "
        f"{index['totals']['rejected']} rejected (see manifest.jsonl)"
    )
    return 0
