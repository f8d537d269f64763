"""What every stage module needs: its params.yaml section, the executor, the output folders, the
stage's MLflow run. (Training stages also use `pipelines.train`; data stages must not import it, so
that an edit to training code reruns no data stage.)"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import yaml

from hi3dgen import manifest, tracking
from hi3dgen.config import from_dict
from hi3dgen.parallel import ExecutorConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs"
MODELS = OUT / "models"
SHARDS = OUT / "shards"
PARAMS = Path(os.environ.get("HI3DGEN_PARAMS", ROOT / "params.yaml"))


def params(section: str) -> dict:
    with open(PARAMS) as f:
        return yaml.safe_load(f).get(section) or {}


def section_config(cls, section: str):
    """A component's typed config from its params.yaml section (`hi3dgen.config.from_dict`: unknown
    keys and wrong types are errors naming the key)."""
    return from_dict(cls, params(section), where=section)


def executor() -> ExecutorConfig:
    return section_config(ExecutorConfig, "executor")


@contextlib.contextmanager
def stage(name: str, section: str | None = None):
    """The stage's MLflow run (the flow's child run when run by a flow) with its params."""
    section = section or name
    with tracking.run(name, params={section: params(section)}):
        yield


def log_rows(rows: list[dict], **extra: float) -> None:
    """Counts of the stage's manifest (and any extra figures) as MLflow metrics."""
    import mlflow

    summary = manifest.summarize(rows)
    metrics = {k: summary[k] for k in ("total", "accepted", "rejected")}
    metrics.update({f"rejected.{k}": v for k, v in summary["rejected_by_reason"].items()})
    mlflow.log_metrics({**metrics, **extra})


def log_result(result: dict) -> None:
    """An evaluation's figures (numbers only, missing ones left out) as MLflow metrics, and what they
    were measured on (checkpoint, data, split) as `eval.*` tags, paths relative to the project."""
    import mlflow

    mlflow.log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float)) and v is not None})
    mlflow.set_tags({f"eval.{k}": _relative(v) for k, v in result.items() if isinstance(v, str)})


def _relative(value: str) -> str:
    path = Path(value)
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else value
