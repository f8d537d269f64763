"""Config dataclasses on the command line: one `--flag` per field, and the nested `hi3dgen GROUP
NAME` commands (`train`, `eval`) that several packages add their models to."""

from __future__ import annotations

import argparse
import dataclasses

GROUP_HELP = {"train": "train a model (resumes from OUT/checkpoints/last.pt)", "eval": "evaluate a model"}


def add_nested_command(subparsers, group: str, name: str, help: str) -> argparse.ArgumentParser:
    """The parser of `hi3dgen GROUP NAME`, creating the GROUP command on first use."""
    parent = subparsers.choices.get(group)
    if parent is None:
        parent = subparsers.add_parser(group, help=GROUP_HELP.get(group, group))
        parent.models = parent.add_subparsers(dest=f"{group}_model", required=True, metavar="MODEL")
    return parent.models.add_parser(name, help=help)


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
