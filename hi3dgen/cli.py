"""The `hi3dgen` command. Each sub-package registers its own sub-commands (argparse only at import
time; heavy imports happen inside the handlers)."""

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
    "flows.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hi3dgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # TEMPORARY while sub-packages land; removed at integration
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hi3dgen {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
