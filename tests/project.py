"""A throwaway copy of this project (tracked files, a fresh git repo, the shared .venv, then
`make setup`), so tests can run DVC stages and flows end to end without touching the real workspace."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RUN_RECORDS = ("dvc.lock", "metrics/")  # what a run writes for git to track (README, "Comparing runs")
TINY = {
    "executor": {"kind": "ray", "workers": 2},
    "synthesize": {"count": 4},
    "render": {"views": 4, "resolution": 48},
}


def env(root: Path) -> dict:
    e = dict(os.environ)
    e.update(
        HI3DGEN_ROOT=str(root),
        DVC_NO_ANALYTICS="1",
        RAY_AUTH_MODE="disabled",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(root / ".hi3dgen" / "prefect"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / '.hi3dgen' / 'mlflow.db'}",
    )
    e["PATH"] = str(REPO / ".venv" / "bin") + os.pathsep + e["PATH"]
    e.pop("PREFECT_API_URL", None)
    return e


def run(root: Path, *cmd: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=root, env=env(root), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def make(tmp: Path, overrides: dict | None = None) -> Path:
    """Copy the project's files into tmp/project, apply params overrides, commit, as a fresh clone."""
    root = tmp / "project"

    def git_files(*flags):
        return subprocess.run(
            ["git", "ls-files", *flags], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()

    # Files not yet committed go along too, but not this workspace's uncommitted run records (a
    # clone has a run's dvc.lock and metrics only once they are committed).
    files = git_files("-c") + [f for f in git_files("-o", "--exclude-standard") if not f.startswith(RUN_RECORDS)]
    for f in files:
        if (REPO / f).is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, root / f)
    (root / ".venv").symlink_to(REPO / ".venv")
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in {**TINY, **(overrides or {})}.items():
        params.setdefault(section, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    # As on a fresh clone, with the shared .venv taken as installed (`-o`: never reinstalled from a
    # copy, which would point its editable install at this throwaway folder); data/ is not there yet.
    run(root, "make", "-o", ".venv/.installed", "setup")
    assert (root / "data" / "local").is_dir()
    return root


def shard_digests(root: Path) -> dict[str, str]:
    """sha256 of every shard tar of a project, by path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "outputs" / "shards").rglob("*.tar"))
    }
