"""The `hi3dgen` command. Each sub-package registers its own sub-commands (argparse only at import
time; heavy imports happen inside the handlers)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys

# Modules that expose `register(subparsers)`; order is the order of `hi3dgen --help`.
COMMAND_MODULES = (
    "hi3dgen.synthesis.cli",
    "hi3dgen.sources.cli",
    "hi3dgen.filtering.cli",
    "hi3dgen.render.cli",
    "hi3dgen.data.cli",
    "hi3dgen.training.cli",
    "hi3dgen.training.cli_shape",
    "flows.cli",
)


def add_config_args(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per field of a config dataclass: bools as --x/--no-x, tuples as lists."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), nargs="+", default=default)
        else:
            parser.add_argument(flag, type=str if default is None else type(default), default=default)


def config_from_args(args: argparse.Namespace, cls, **extra):
    """The config dataclass back from the flags `add_config_args` made."""
    values = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**{**values, **extra})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hi3dgen", description="The Hi3DGen training pipeline: DetailVerse -> NiRNE -> NoRLD."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"hi3dgen {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
