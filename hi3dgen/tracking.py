"""MLflow: where runs go, the tags every run carries, and images.

Defaults need no service: a sqlite store under the project's state folder (`.hi3dgen/`, or
HI3DGEN_STATE) with artifacts beside it. MLFLOW_TRACKING_URI switches to a real server. A run
started while MLFLOW_RUN_ID is set (the flow sets it for each stage's child run) continues that run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np

EXPERIMENT = "hi3dgen"


def state_dir() -> Path:
    root = os.environ.get("HI3DGEN_ROOT", os.getcwd())
    d = Path(os.environ.get("HI3DGEN_STATE", Path(root) / ".hi3dgen"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def setup(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and return the experiment id (created with a local artifact
    location for file stores, so artifacts never land in ./mlruns of the current folder)."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:") or uri.startswith("file:"):
        location = (state_dir() / "mlartifacts" / experiment).as_uri()
    try:
        return mlflow.create_experiment(experiment, artifact_location=location)
    except Exception:  # created meanwhile by a concurrent process
        return mlflow.get_experiment_by_name(experiment).experiment_id


def git_tags(root: str | os.PathLike | None = None) -> dict[str, str]:
    root = root or os.environ.get("HI3DGEN_ROOT", os.getcwd())

    def git(*args):
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    return {
        "git.commit": git("rev-parse", "HEAD") or "unknown",
        "git.dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))).lower(),
    }


@contextlib.contextmanager
def run(name: str, params: dict | None = None, tags: dict | None = None, nested: bool = False):
    """An MLflow run with the standard tags; continues MLFLOW_RUN_ID when the flow set one."""
    import mlflow

    exp = setup()
    with mlflow.start_run(experiment_id=exp, run_name=name, nested=nested) as active:
        mlflow.set_tags({**git_tags(), "hi3dgen.stage": name, **(tags or {})})
        if params:
            mlflow.log_params(flatten(params))
        yield active


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> flat `a.b` params (MLflow params are flat strings of <= 6000 chars)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:6000]
    return out


def log_image(image: np.ndarray, artifact_file: str) -> None:
    """Log an (H, W, 3) uint8 or float [0, 1] image to the active run."""
    import mlflow

    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    mlflow.log_image(image, artifact_file)


def normal_to_rgb(normal: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Camera-space normals (H, W, 3) -> the usual RGB visualization (background black)."""
    rgb = ((np.clip(normal, -1, 1) * 0.5 + 0.5) * 255).round().astype(np.uint8)
    if mask is not None:
        rgb[~mask.astype(bool)] = 0
    return rgb


def grid(images: list[np.ndarray], cols: int) -> np.ndarray:
    """Tile same-sized (H, W, 3) uint8 images into one image, row by row."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return out
