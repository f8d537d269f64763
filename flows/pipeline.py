"""Prefect flows: each DVC stage is a task (retries with backoff, logs streamed), so DVC decides what
is stale and skips the rest.

- `end_to_end`: every stage in dependency order, then `dvc push`.
- `dataset_refresh`: the data stages only (deployable on a cron schedule).
- `train`: the training and evaluation stages.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import yaml
from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from flows import params, project
from hi3dgen import tracking


def _dvc(args: list[str], logger, env: dict | None = None) -> int:
    """Run a dvc command in the project, streaming its output to the flow's log; its exit code."""
    cmd = [str(project.root() / ".venv" / "bin" / "dvc"), *args]
    if not (project.root() / ".venv" / "bin" / "dvc").exists():
        cmd[0] = "dvc"
    proc = subprocess.Popen(
        cmd,
        cwd=project.root(),
        env={**project.environment(), **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    for line in proc.stdout:
        logger.info(line.rstrip())
    return proc.wait()


def lock_tags(stage: str) -> dict[str, str]:
    """The stage's entry of dvc.lock as tags: a digest of its inputs (deps + params) and of its
    outputs, and each output's own hash."""
    lock_file = project.root() / "dvc.lock"
    entry = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {}).get(stage, {}) if lock_file.exists() else {}

    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

    tags = {
        "dvc.lock.inputs": digest([entry.get("deps"), entry.get("params")]),
        "dvc.lock.outputs": digest(entry.get("outs")),
    }
    for out in entry.get("outs") or []:
        tags[f"dvc.out.{out['path']}"] = out.get("md5", "")
    return tags


def changes(stage: str) -> dict:
    """What DVC finds changed in a stage (its `dvc status` entry: deps, params, outs, command);
    empty when `dvc repro` would skip it."""
    from dvc.repo import Repo

    with Repo(str(project.root())) as repo:
        return repo.status(targets=[stage])


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), task_run_name="{stage}")
def run_stage(stage: str, mlflow_run_id: str) -> dict:
    """`dvc repro --single-item STAGE`: runs the stage only if its deps, params or outs changed.
    The stage logs into the MLflow child run `mlflow_run_id`."""
    logger = get_run_logger()
    t0 = time.monotonic()
    changed = changes(stage)
    logger.info(f"dvc status of {stage}: {json.dumps(changed) if changed else 'unchanged, DVC skips it'}")
    code = _dvc(["repro", "--single-item", stage], logger, env={"MLFLOW_RUN_ID": mlflow_run_id})
    if code != 0:
        raise RuntimeError(f"stage {stage} failed (dvc exit code {code}); its log is above")
    return {"stage": stage, "skipped": not changed, "seconds": round(time.monotonic() - t0, 2)}


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def push() -> None:
    """`dvc push` of every cached output to the configured remote."""
    code = _dvc(["push"], get_run_logger())
    if code != 0:
        raise RuntimeError(f"dvc push failed (exit code {code}): is the DVC remote reachable?")


def _run(flow_name: str, names: list[str], push_at_end: bool) -> list[dict]:
    """One MLflow parent run for the flow, one child run per stage (also for skipped stages)."""
    from mlflow import MlflowClient

    current = params.current()
    results = []
    with tracking.run(flow_name, params=current, tags={"hi3dgen.preset": str(current.get("preset"))}) as parent:
        client = MlflowClient()
        for stage in names:
            child = client.create_run(
                parent.info.experiment_id,
                run_name=stage,
                tags={
                    "mlflow.parentRunId": parent.info.run_id,
                    "hi3dgen.stage": stage,
                    "hi3dgen.preset": str(current.get("preset")),
                    **tracking.git_tags(),
                },
            )
            child_id = child.info.run_id
            try:
                result = run_stage(stage, child_id)
            except Exception:
                client.set_terminated(child_id, "FAILED")
                raise
            for key, value in {**lock_tags(stage), "dvc.skipped": str(result["skipped"]).lower()}.items():
                client.set_tag(child_id, key, value)
            client.log_metric(child_id, "stage_seconds", result["seconds"])
            client.set_terminated(child_id, "FINISHED")
            results.append({**result, "parent_run_id": parent.info.run_id})
        if push_at_end:
            push()
    return results


@flow(name="end_to_end", log_prints=True)
def end_to_end(until: str | None = None, push_at_end: bool = True) -> list[dict]:
    return _run("end_to_end", project.stages_until(until), push_at_end)


@flow(name="dataset_refresh", log_prints=True)
def dataset_refresh(push_at_end: bool = True) -> list[dict]:
    return _run("dataset_refresh", project.stages_until(None, only=project.DATA_STAGES), push_at_end)


@flow(name="train", log_prints=True)
def train(push_at_end: bool = True) -> list[dict]:
    names = [s for s in project.stages() if s not in project.DATA_STAGES]
    return _run("train", names, push_at_end)
