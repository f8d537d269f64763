"""What every stage module needs: its params.yaml section, the executor, the output folders."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

import yaml

from hi3dgen import io, tracking
from hi3dgen.data import manifest, webds
from hi3dgen.parallel import ExecutorConfig
from hi3dgen.training.launch import LaunchConfig, launch

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


def launch_config() -> LaunchConfig:
    """Training workers: one process, or DDP over Ray Train workers (params.yaml `train`)."""
    return config(LaunchConfig, "train", ray_address=params("executor").get("address"))


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


MODELS = OUT / "models"
SHARDS = OUT / "shards"


def run_dir(name: str, run_config: dict) -> Path:
    """A training stage's run folder: kept while the run config is the same and the run has not
    finished (a killed run resumes from its checkpoint), emptied otherwise. DVC reruns a finished
    stage only when its code, data or parameters changed: that is a new run, not a resume."""
    out = MODELS / name
    marker = out / "run_config.json"
    fp = manifest.fingerprint(run_config)
    finished = (out / "model.pt").exists()
    if out.exists() and (finished or not marker.exists() or json.loads(marker.read_text()).get("fingerprint") != fp):
        shutil.rmtree(out)
    io.write_json(marker, {"fingerprint": fp, "config": run_config})
    return out


def train(name: str, train_fn, cfg, steps: int | None = None) -> Path:
    """A training stage: `train_fn` on the pipeline's shards in outputs/models/<name> (one
    process, or Ray Train workers per params.yaml `train`); `steps` over the preset's."""
    cfg.data.shards = str(SHARDS)
    if steps:
        cfg.trainer.steps = steps
    cfg.tracking.run_name = name
    out = run_dir(name, cfg.to_dict())
    launch(train_fn, cfg, str(out), launch_config())
    return out


def view_domains(split: str = "train") -> dict[str, int]:
    """View samples per domain in a split of the view shards."""
    counts: dict[str, int] = {}
    for shard in webds.load_index(SHARDS)["sets"]["views"][split]["shards"]:
        for domain, n in shard["domains"].items():
            counts[domain] = counts.get(domain, 0) + n
    return counts
