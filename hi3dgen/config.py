"""Typed, frozen configs: one dataclass per component, composed into one run config per command, and
the one way they are built, from files and from the command line.

A config is built in layers, each a nested dict checked against the dataclass's fields (an unknown
key is an error naming the dotted key and the known ones; values are type-checked): the dataclass
defaults, a preset file, the params.yaml section a pipeline stage reads, then the command line
(tyro: `--trainer.steps 100`, nested fields by dots, plus the short aliases a field declares, as
`--steps`). Configs are frozen: a changed one is a new one (`dataclasses.replace`), so nothing
edits a config after it was checked.

Presets are files, `presets/<component>/<name>.yaml`, each with a debug twin `<name>.debug.yaml`
beside it (the same models, a handful of steps: it checks a preset's path, shapes and memory in a
minute). A preset file may start from another: `base: NAME` (or a list of names) in the same folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

import tyro
import yaml

PRESETS = Path(__file__).resolve().parents[1] / "presets"
GROUP_HELP = {"train": "train a model (resumes from OUT/checkpoints/last.pt)", "eval": "evaluate a model"}


# ---- building configs from nested dicts ------------------------------------------------------------
def merge(*layers: dict) -> dict:
    """Nested dicts merged left to right (later values win; dicts merge key by key). A dotted key
    (`trainer.steps`) is the same as the nested one."""
    out: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            head, _, rest = key.partition(".")
            if rest:
                value, key = {rest: value}, head
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            elif isinstance(value, dict):
                out[key] = merge(value)
            else:
                out[key] = value
    return out


def _strip(hint):
    """The type under `Annotated[...]`, and (type, optional) for `X | None`."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), True
    return hint, False


def _value(hint, value, where: str):
    hint, optional = _strip(hint)
    if value is None:
        if optional:
            return None
        raise ValueError(f"config key {where!r} must not be null")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"config key {where!r} is a section: give a mapping, not {value!r}")
        return from_dict(hint, value, where=where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {where!r} is a list, not {value!r}")
        args = typing.get_args(hint)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise ValueError(f"config key {where!r} takes {len(items)} values, not {len(value)}")
        return tuple(_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(items, value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ValueError(f"config key {where!r} is {hint.__name__}, not {type(value).__name__} ({value!r})")
    return value


def from_dict(cls, data: dict, base=None, where: str = ""):
    """An instance of dataclass `cls`: `base` (default: `cls()`) with the values of nested dict `data`."""
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    changes = {}
    for key, value in merge(data).items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise ValueError(f"unknown config key {name!r}; known there: {sorted(fields)}")
        hint = _strip(hints[key])[0]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict) and getattr(base, key) is not None:
            changes[key] = from_dict(hint, value, getattr(base, key), name)
        else:
            changes[key] = _value(hints[key], value, name)
    return dataclasses.replace(base, **changes)


# ---- preset files -----------------------------------------------------------------------------------
def preset_names(component: str) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in (PRESETS / component).glob("*.yaml"))


def preset(component: str, name: str) -> dict:
    """The nested dict of presets/<component>/<name>.yaml, its `base` presets merged under it."""
    path = PRESETS / component / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"unknown {component} preset {name!r}; known: {preset_names(component)}")
    data = yaml.safe_load(path.read_text()) or {}
    bases = data.pop("base", None) or []
    return merge(*(preset(component, b) for b in ([bases] if isinstance(bases, str) else bases)), data)


def build(cls, preset_name: str | None = None, *layers: dict):
    """A run config: `cls` defaults, the preset `cls.COMPONENT/preset_name` (its name kept in the
    config's `preset` field), then each layer of overrides."""
    base = {}
    if preset_name is not None:
        base = merge(preset(cls.COMPONENT, preset_name), {"preset": preset_name})
    return from_dict(cls, merge(base, *layers))


# ---- the command line ---------------------------------------------------------------------------
def flag(*aliases: str):
    """A field's short command-line names beside its dotted one: `Annotated[int, flag("--steps")]`."""
    return tyro.conf.arg(aliases=aliases)


def add_nested_command(subparsers, group: str, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """The parser of `hi3dgen GROUP NAME`, creating the GROUP command on first use."""
    parent = subparsers.choices.get(group)
    if parent is None:
        parent = subparsers.add_parser(group, help=GROUP_HELP.get(group, group))
        parent.models = parent.add_subparsers(dest=f"{group}_model", required=True, metavar="MODEL")
    return parent.models.add_parser(name, help=help, **kwargs)


def add_command(subparsers, name: str, help: str, run, group: str | None = None) -> None:
    """`hi3dgen [GROUP] NAME ARGS` whose ARGS are parsed by `run(argv, prog)` (with `parse`):
    argparse only routes to it, and the `hi3dgen` entry passes on the words it does not know."""
    p = (
        add_nested_command(subparsers, group, name, help=help, add_help=False)
        if group
        else subparsers.add_parser(name, help=help, add_help=False)
    )
    prog = " ".join(["hi3dgen", *([group] if group else []), name])
    p.set_defaults(func=lambda args: run(args.argv, prog), takes_argv=True)


def parse(cls, argv: list[str], prog: str, default=None):
    """The frozen `cls` from command-line words (tyro), starting from `default`'s values."""
    return tyro.cli(cls, args=argv, prog=prog, default=default, description=(cls.__doc__ or "").strip())


def option(argv: list[str], flag: str, default: str) -> str:
    """The value of `flag` in `argv` (`--flag V` or `--flag=V`), read before the full parse (a
    preset chooses the defaults the other flags override)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(flag, default=default)
    return getattr(p.parse_known_args(argv)[0], flag.lstrip("-").replace("-", "_"))
