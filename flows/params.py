"""Changing params.yaml from the command line (`--preset`, `--set key=value`), comments kept.

Like `dvc exp run --set-param`, changes are written to params.yaml itself, so `dvc repro`, the
lock file and the MLflow params all agree on what ran.
"""

from __future__ import annotations

import yaml
from ruamel.yaml import YAML

from flows import project


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 120
    return y


def _parse_value(text: str):
    return yaml.safe_load(text) if text != "" else None


def apply(preset: str | None, sets: list[str]) -> dict:
    """Apply presets/<preset>.yaml, then each `section.key=value`; returns what changed."""
    path = project.root() / "params.yaml"
    y = _yaml()
    doc = y.load(path.read_text())
    changes: dict = {}
    if preset:
        preset_file = project.root() / "presets" / f"{preset}.yaml"
        if not preset_file.exists():
            raise ValueError(f"unknown preset {preset!r}; presets are {preset_names()}")
        overlay = yaml.safe_load(preset_file.read_text()) or {}
        for section, values in overlay.items():
            for key, value in values.items():
                changes.update(_set(doc, f"{section}.{key}", value))
        changes.update(_set(doc, "preset", preset))
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants key=value (e.g. render.views=4), got {item!r}")
        changes.update(_set(doc, key.strip(), _parse_value(value.strip())))
    if changes:
        with open(path, "w") as f:
            y.dump(doc, f)
    return changes


def _set(doc, dotted: str, value) -> dict:
    """Set one key; below an `overrides` mapping the rest of the name is one dotted key (a field of
    a run config: `norld.overrides.reg.weight`)."""
    head, sep, rest = dotted.partition(".overrides.")
    *parents, leaf = head.split(".") + (["overrides", rest] if sep else [])
    node = doc
    for i, part in enumerate(parents):
        if part not in node:
            raise ValueError(f"params.yaml has no section {'.'.join(parents[: i + 1])!r}")
        node = node[part]
    if parents and leaf not in node and parents[-1] != "overrides":
        raise ValueError(f"params.yaml has no key {dotted!r}; keys there: {sorted(node)}")
    if node.get(leaf) == value:
        return {}
    node[leaf] = value
    return {dotted: value}


def current() -> dict:
    return yaml.safe_load((project.root() / "params.yaml").read_text())


def preset_names() -> list[str]:
    return sorted(p.stem for p in (project.root() / "presets").glob("*.yaml"))
