"""What every stage module needs: its params.yaml section, the executor, the output folders."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from hi3dgen.parallel import ExecutorConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs"
PARAMS = Path(os.environ.get("HI3DGEN_PARAMS", ROOT / "params.yaml"))


def params(section: str) -> dict:
    with open(PARAMS) as f:
        return yaml.safe_load(f).get(section) or {}


def config(cls, section: str, **extra):
    """A component's typed config from its params.yaml section (unknown keys are an error)."""
    values = {**params(section), **extra}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"params.yaml [{section}] has unknown keys {unknown}; known: {sorted(names)}")
    return cls(**values)


def executor() -> ExecutorConfig:
    return config(ExecutorConfig, "executor")
