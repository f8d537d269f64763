"""`hi3dgen filter --in DIR [--in DIR ...] --out DIR`"""

from __future__ import annotations


def register(sub) -> None:
    from hi3dgen.config import add_config_args
    from hi3dgen.filtering.filter import FilterConfig
    from hi3dgen.parallel import add_executor_args

    p = sub.add_parser("filter", help="measure assets and keep those that pass the thresholds")
    p.add_argument(
        "--in",
        dest="inputs",
        action="append",
        required=True,
        help="a stage output folder with manifest.jsonl (repeatable)",
    )
    p.add_argument("--out", required=True)
    add_config_args(p, FilterConfig)
    add_executor_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from hi3dgen.config import config_from_args
    from hi3dgen.filtering.filter import FilterConfig, filter_assets
    from hi3dgen.parallel import executor_from_args

    filter_assets(args.inputs, args.out, config_from_args(args, FilterConfig), executor_from_args(args))
    return 0
