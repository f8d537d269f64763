"""`hi3dgen shard --in RENDER_DIR --out DIR [shard options] [executor]`"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import tyro

from hi3dgen import config
from hi3dgen.data.shards import ShardConfig
from hi3dgen.parallel import ExecutorConfig


@dataclasses.dataclass(frozen=True)
class Shard:
    """Write WebDataset view and shape shards, split train/val by asset."""

    input: Annotated[str, config.flag("--in")]  # a render output folder
    out: str
    shards: Annotated[ShardConfig, tyro.conf.arg(name="")] = ShardConfig()
    executor: ExecutorConfig = ExecutorConfig()


def run(argv: list[str], prog: str) -> int:
    from hi3dgen.data.shards import write_shards

    cmd = config.parse(Shard, argv, prog)
    write_shards(cmd.input, cmd.out, cmd.shards, cmd.executor)
    return 0


def register(sub) -> None:
    config.add_command(sub, "shard", "write WebDataset view and shape shards, split train/val by asset", run)
