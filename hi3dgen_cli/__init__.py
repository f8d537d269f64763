"""The `hi3dgen` command: above the library (`hi3dgen`) and the orchestration (`flows`), it gathers
the sub-commands each package registers (argparse only at import time; heavy imports happen
inside the handlers)."""

from __future__ import annotations

import argparse
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
    "hi3dgen.eval.cli",
    "hi3dgen.inference.cli",
    "flows.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hi3dgen", description="The Hi3DGen training pipeline: DetailVerse -> NiRNE -> NoRLD."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command and its arguments; `args.func(args)` runs it. A command parsed by tyro
    (`hi3dgen.config.add_command`) gets its words as `args.argv`."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "takes_argv", False):
        args.argv = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"hi3dgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
