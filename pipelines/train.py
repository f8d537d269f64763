"""What the training stages share: the run folder of `outputs/models/<name>` and the launch (one
process, or Ray Train workers per params.yaml `train`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hi3dgen import config, io, lineage, manifest
from hi3dgen.data import webds
from hi3dgen.training.launch import LaunchConfig, launch
from pipelines.common import MODELS, SHARDS, params

RUN_CONFIG = "run_config.json"
RUN_FILES = ("model.pt", RUN_CONFIG)


def launch_config() -> LaunchConfig:
    """Training workers: one process, or DDP over Ray Train workers (params.yaml `train`)."""
    values = {**params("train"), "ray_address": params("executor").get("address")}
    return config.from_dict(LaunchConfig, values, where="train")


def _ours(rel: str) -> bool:
    return rel in RUN_FILES or (rel.startswith("checkpoints/") and rel.endswith(".pt"))


def run_dir(name: str, run_config: dict, code: str) -> Path:
    """A training stage's run folder: kept while the run config and the training code (`code`, its
    digest) are the same and the run has not finished (a killed run resumes from its checkpoint),
    emptied otherwise. DVC reruns a finished stage only when its code, data or parameters changed:
    that is a new run, not a resume. A folder holding files a training run does not write is
    refused, never emptied."""
    out = io.claim_dir(MODELS / name, name, _ours)
    marker = out / RUN_CONFIG
    fp = manifest.fingerprint({"config": run_config, "code": code})
    finished = (out / "model.pt").exists()
    if finished or not marker.exists() or json.loads(marker.read_text()).get("fingerprint") != fp:
        for rel in (*RUN_FILES, "checkpoints"):
            io.remove_tree(out / rel)
    io.write_json(marker, {"fingerprint": fp, "config": run_config})
    return out


def run_config(cls, section: str, name: str, *layers: dict, keys: tuple[str, ...] = ()):
    """A training stage's run config: the preset its params.yaml section names, the section's
    `overrides`, `layers`, then the pipeline's shards and the stage's name as the MLflow run's.
    The section holds `preset`, `overrides` and the stage's own `keys`; anything else is an error."""
    p = params(section)
    unknown = sorted(set(p) - {"preset", "overrides", *keys})
    if unknown:
        raise ValueError(f"params.yaml [{section}] has unknown keys {unknown}; fields of the run go in `overrides`")
    fixed = {"data": {"shards": str(SHARDS)}, "tracking": {"run_name": name}}
    return config.build(cls, p["preset"], p.get("overrides") or {}, *layers, fixed)


def train(name: str, train_fn, cfg) -> Path:
    """A training stage: `train_fn(cfg)` in outputs/models/<name>."""
    out = run_dir(name, dataclasses.asdict(cfg), lineage.code_digest(lineage.function_module(train_fn)))
    launch(train_fn, cfg, str(out), launch_config())
    return out


def view_domains(split: str = "train") -> dict[str, int]:
    """View samples per domain in a split of the view shards."""
    counts: dict[str, int] = {}
    for shard in webds.load_index(SHARDS)["sets"]["views"][split]["shards"]:
        for domain, n in shard["domains"].items():
            counts[domain] = counts.get(domain, 0) + n
    return counts
