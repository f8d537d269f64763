"""The project a flow runs in: its root, state folder, stage order, run lock and environment."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import yaml

from hi3dgen import tracking

DATA_STAGES = ("synthesize", "ingest", "filter", "render", "shard")


def root() -> Path:
    """The project root: HI3DGEN_ROOT, else the folder above this package."""
    return Path(os.environ.get("HI3DGEN_ROOT", Path(__file__).resolve().parents[1])).resolve()


def stages() -> list[str]:
    """All stages of dvc.yaml in file order, which is dependency order."""
    with open(root() / "dvc.yaml") as f:
        return list(yaml.safe_load(f)["stages"])


def stages_until(until: str | None, only: tuple[str, ...] | None = None) -> list[str]:
    names = stages()
    if until is not None and until not in names:
        raise ValueError(f"unknown stage {until!r}; stages are {names}")
    selected = names[: names.index(until) + 1] if until else names
    return [s for s in selected if only is None or s in only]


def environment() -> dict[str, str]:
    """Environment for stage processes: the embedded defaults unless the caller set real services."""
    env = dict(os.environ)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary Prefect server may take longer than Prefect's 20 s to start on a loaded machine.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    env.setdefault("PREFECT_HOME", str(tracking.state_dir(root()) / "prefect"))
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tracking.state_dir(root()) / 'mlflow.db'}")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HI3DGEN_ROOT"] = str(root())
    return env


@contextlib.contextmanager
def run_lock():
    """One `hi3dgen run` per project at a time; the OS drops the lock if the holder dies. The lock
    file names its holder for the refusal."""
    from filelock import FileLock, Timeout

    path = tracking.state_dir(root()) / "run.lock"
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = path.read_text().strip() or "another process"
        raise RuntimeError(
            f"another hi3dgen run is in progress in {root()} ({holder}); "
            "wait for it to finish or stop it, then run again"
        ) from None
    try:
        path.write_text(f"pid {os.getpid()}\n")
        yield
    finally:
        lock.release()


def preflight(env: dict[str, str]) -> None:
    """Fail fast, with what to do, when a configured service is not there."""
    api = env.get("PREFECT_API_URL")
    if api and not tracking.reachable(api.rstrip("/") + "/health"):
        raise RuntimeError(
            f"the Prefect server at PREFECT_API_URL={api} is unreachable: start it "
            "(`prefect server start`) or unset PREFECT_API_URL to use a temporary local server"
        )
    tracking.preflight(env.get("MLFLOW_TRACKING_URI"))
