"""Prefect flows: each DVC stage is a task (retries with backoff, logs streamed), so DVC decides what
is stale and skips the rest.

- `end_to_end`: every stage in dependency order, then `dvc push`.
- `dataset_refresh`: the data stages only (deployable on a cron schedule).
- `train`: the training and evaluation stages.
"""

from __future__ import annotations

import subprocess
import time

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from flows import project


def _dvc(args: list[str], logger) -> tuple[int, str]:
    """Run a dvc command in the project, streaming its output to the flow's log."""
    cmd = [str(project.root() / ".venv" / "bin" / "dvc"), *args]
    if not (project.root() / ".venv" / "bin" / "dvc").exists():
        cmd[0] = "dvc"
    proc = subprocess.Popen(
        cmd, cwd=project.root(), env=project.environment(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        logger.info(line.rstrip())
    return proc.wait(), "".join(lines)


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), task_run_name="{stage}")
def run_stage(stage: str) -> dict:
    """`dvc repro --single-item STAGE`: runs the stage only if its deps, params or outs changed."""
    logger = get_run_logger()
    t0 = time.monotonic()
    code, out = _dvc(["repro", "--single-item", stage], logger)
    if code != 0:
        raise RuntimeError(f"stage {stage} failed (dvc exit code {code}); its log is above")
    skipped = f"Stage '{stage}' didn't change, skipping" in out
    return {"stage": stage, "skipped": skipped, "seconds": round(time.monotonic() - t0, 2)}


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5))
def push() -> None:
    """`dvc push` of every cached output to the configured remote."""
    code, _ = _dvc(["push"], get_run_logger())
    if code != 0:
        raise RuntimeError(f"dvc push failed (exit code {code}): is the DVC remote reachable?")


def _run(names: list[str], push_at_end: bool) -> list[dict]:
    results = [run_stage(s) for s in names]
    if push_at_end:
        push()
    return results


@flow(name="end_to_end", log_prints=True)
def end_to_end(until: str | None = None, push_at_end: bool = True) -> list[dict]:
    return _run(project.stages_until(until), push_at_end)


@flow(name="dataset_refresh", log_prints=True)
def dataset_refresh(push_at_end: bool = True) -> list[dict]:
    return _run(project.stages_until(None, only=project.DATA_STAGES), push_at_end)


@flow(name="train", log_prints=True)
def train(push_at_end: bool = True) -> list[dict]:
    names = [s for s in project.stages() if s not in project.DATA_STAGES]
    return _run(names, push_at_end)
