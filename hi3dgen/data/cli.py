"""`hi3dgen shard --in RENDER_DIR --out DIR`"""

from __future__ import annotations


def register(sub) -> None:
    from hi3dgen.config import add_config_args
    from hi3dgen.data.shards import ShardConfig
    from hi3dgen.parallel import add_executor_args

    p = sub.add_parser("shard", help="write WebDataset view and shape shards, split train/val by asset")
    p.add_argument("--in", dest="input", required=True, help="a render output folder")
    p.add_argument("--out", required=True)
    add_config_args(p, ShardConfig)
    add_executor_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from hi3dgen.config import config_from_args
    from hi3dgen.data.shards import ShardConfig, write_shards
    from hi3dgen.parallel import executor_from_args

    write_shards(args.input, args.out, config_from_args(args, ShardConfig), executor_from_args(args))
    return 0
