"""`hi3dgen shard --in RENDER_DIR --out DIR`"""

from __future__ import annotations

import dataclasses


def register(sub) -> None:
    from hi3dgen.data.shards import ShardConfig
    from hi3dgen.parallel import add_executor_args

    p = sub.add_parser("shard", help="write WebDataset view and shape shards, split train/val by asset")
    p.add_argument("--in", dest="input", required=True, help="a render output folder")
    p.add_argument("--out", required=True)
    for f in dataclasses.fields(ShardConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, tuple):
            p.add_argument(flag, type=float, nargs="+", default=f.default)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    add_executor_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from hi3dgen.data.shards import ShardConfig, write_shards
    from hi3dgen.parallel import executor_from_args

    cfg = ShardConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ShardConfig)})
    write_shards(args.input, args.out, cfg, executor_from_args(args))
    return 0
