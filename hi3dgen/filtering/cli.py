"""`hi3dgen filter --in DIR [--in DIR ...] --out DIR [thresholds] [executor]`"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import tyro

from hi3dgen import config
from hi3dgen.filtering.filter import FilterConfig
from hi3dgen.parallel import ExecutorConfig


@dataclasses.dataclass(frozen=True)
class Filter:
    """Measure assets and keep those that pass the thresholds."""

    # stage output folders with manifest.jsonl (--in A --in B)
    inputs: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, config.flag("--in")]
    out: str
    thresholds: Annotated[FilterConfig, tyro.conf.arg(name="")] = FilterConfig()
    executor: ExecutorConfig = ExecutorConfig()


def run(argv: list[str], prog: str) -> int:
    from hi3dgen.filtering.filter import filter_assets

    cmd = config.parse(Filter, argv, prog)
    filter_assets(list(cmd.inputs), cmd.out, cmd.thresholds, cmd.executor)
    return 0


def register(sub) -> None:
    config.add_command(sub, "filter", "measure assets and keep those that pass the thresholds", run)
