"""`hi3dgen filter --in DIR [--in DIR ...] --out DIR`"""

from __future__ import annotations

import argparse
import dataclasses


def register(sub) -> None:
    from hi3dgen.filtering.filter import FilterConfig
    from hi3dgen.parallel import add_executor_args

    p = sub.add_parser("filter", help="measure assets and keep those that pass the thresholds")
    p.add_argument("--in", dest="inputs", action="append", required=True,
                   help="a stage output folder with manifest.jsonl (repeatable)")
    p.add_argument("--out", required=True)
    for f in dataclasses.fields(FilterConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default)
    add_executor_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from hi3dgen.filtering.filter import FilterConfig, filter_assets
    from hi3dgen.parallel import executor_from_args

    cfg = FilterConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FilterConfig)})
    filter_assets(args.inputs, args.out, cfg, executor_from_args(args))
    return 0
