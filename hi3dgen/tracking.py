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


def state_dir(root: str | os.PathLike | None = None) -> Path:
    """Where the embedded services keep their state (MLflow db and artifacts, Prefect home, the DVC
    remote, the run lock): HI3DGEN_STATE, else `.hi3dgen` in the project root (`root`, else
    HI3DGEN_ROOT, else the current folder)."""
    root = root or os.environ.get("HI3DGEN_ROOT", os.getcwd())
    d = Path(os.environ.get("HI3DGEN_STATE", Path(root) / ".hi3dgen"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether a server answers at `url` (any answer but a 5xx; a 4xx such as a login page is a
    server that is there)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def preflight(uri: str | None = None) -> None:
    """Fail within seconds, saying what to do, when the MLflow server the runs go to is not there
    (MLflow's own client retries for minutes, then raises a chain of tracebacks)."""
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")) and not reachable(uri.rstrip("/") + "/health"):
        raise RuntimeError(
            f"the MLflow server at MLFLOW_TRACKING_URI={uri} is unreachable: start it or unset "
            "MLFLOW_TRACKING_URI to use the local sqlite store"
        )


def setup(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store (after `preflight`) and return the experiment id (created with a
    local artifact location for file stores, so artifacts never land in ./mlruns of the current
    folder)."""
    import mlflow

    uri = tracking_uri()
    preflight(uri)
    mlflow.set_tracking_uri(uri)
    # MLflow creates and migrates a new sqlite database on first use: one process at a time
    if uri.startswith("sqlite:"):
        from filelock import FileLock

        guard = FileLock(f"{uri.removeprefix('sqlite:///')}.lock")
    else:
        guard = contextlib.nullcontext()
    with guard:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            location = (state_dir() / "mlartifacts" / experiment).as_uri()
        try:
            return mlflow.create_experiment(experiment, artifact_location=location)
        except Exception:  # created meanwhile by a process on another machine
            return mlflow.get_experiment_by_name(experiment).experiment_id


def git_tags(root: str | os.PathLike | None = None) -> dict[str, str]:
    root = root or os.environ.get("HI3DGEN_ROOT", os.getcwd())

    def git(*args):
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    # A run rewrites dvc.lock and metrics/, its own records: they do not make the code dirty.
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!metrics")
    return {"git.commit": git("rev-parse", "HEAD") or "unknown", "git.dirty": str(bool(dirty)).lower()}


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


def log_files(run_id: str, paths: list, artifact_path: str) -> None:
    """Files as artifacts of a run, finished or not (`hi3dgen generate --from-run` adds its meshes to
    the run whose models made them)."""
    from mlflow import MlflowClient

    setup()
    client = MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def curves_image(curves: dict[str, list[tuple[int, float]]]) -> np.ndarray:
    """Curves (name -> [(step, value)]) as one (H, W, 3) uint8 plot; log scale when all are positive."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot()
    for name, points in sorted(curves.items()):
        steps, values = zip(*sorted(points))
        ax.plot(steps, values, label=name, linewidth=1)
    if all(v > 0 for points in curves.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return out


KEY_METRICS = ("NE", "SNE", "chamfer", "fscore", "normal_consistency", "images_per_s", "samples_per_s")


def _collect(client, run) -> tuple[dict, dict]:
    """Params and the last value of each metric of a run and its child runs (child keys prefixed
    by the stage name, unless the parent has the same key)."""
    params, metrics = dict(run.data.params), dict(run.data.metrics)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=200
    )
    for child in children:
        stage = child.data.tags.get("hi3dgen.stage", child.info.run_name)
        source = next(iter(made_the_same(client, child)), child)  # a skipped stage: what it stands for
        for k, v in source.data.params.items():
            params.setdefault(k, v)
        for k, v in source.data.metrics.items():
            metrics[f"{stage}/{k}"] = v
    return params, metrics


def made_the_same(client, child) -> list:
    """For the child run of a stage that DVC skipped: the runs of that stage that ran and made the
    same outputs (by their dvc.lock digest), newest first; for any other run, none."""
    tags = child.data.tags
    if tags.get("dvc.skipped") != "true" or not tags.get("dvc.lock.outputs") or not tags.get("hi3dgen.stage"):
        return []
    return client.search_runs(
        [child.info.experiment_id],
        f"tags.`hi3dgen.stage` = '{tags['hi3dgen.stage']}' and "
        f"tags.`dvc.lock.outputs` = '{tags['dvc.lock.outputs']}' and tags.`dvc.skipped` = 'false'",
        order_by=["attributes.start_time DESC"],
        max_results=100,
    )


def compare(
    run_ids: list[str] | None = None,
    last: int | None = None,
    experiment: str = EXPERIMENT,
    group_by: tuple[str, ...] = (),
) -> str:
    """A table of the params that differ and the key metrics of the given (or the latest
    top-level) runs of `experiment` (the latest `last`: 2 by default, all with `group_by`, all for 0).
    With `group_by` (param names), finished runs are pooled by those params' values and each group's
    metrics are the mean ± sample std over its runs (seeds, say), with the run count."""
    from mlflow import MlflowClient

    exp = setup(experiment)
    client = MlflowClient()
    if run_ids:
        runs = [client.get_run(r) for r in run_ids]
    else:
        runs = [
            r
            for r in client.search_runs([exp], order_by=["attributes.start_time DESC"], max_results=1000)
            if "mlflow.parentRunId" not in r.data.tags and (not group_by or r.info.status == "FINISHED")
        ][: (None if group_by else 2) if last is None else last or None]
    if not runs:
        return "no runs yet: start one with `hi3dgen run`"
    data = [_collect(client, r) for r in runs]
    keys = sorted({k for p, _ in data for k in p})
    metric_keys = sorted({k for _, m in data for k in m if k.split("/")[-1] in KEY_METRICS})
    if group_by:
        return _grouped(data, keys, metric_keys, group_by)
    differing = [k for k in keys if len({p.get(k) for p, _ in data}) > 1]
    header = ["", *[r.info.run_id[:8] for r in runs]]
    rows = [["run", *[r.info.run_name or "" for r in runs]], ["status", *[r.info.status for r in runs]]]
    rows += [[f"param {k}", *[str(p.get(k, "-")) for p, _ in data]] for k in differing]
    rows += [[f"metric {k}", *[f"{m[k]:.4g}" if k in m else "-" for _, m in data]] for k in metric_keys]
    return _table(header, rows)


def _grouped(data: list[tuple[dict, dict]], keys: list[str], metric_keys: list[str], group_by: tuple[str, ...]) -> str:
    missing = [g for g in group_by if g not in keys]
    if missing:
        raise ValueError(
            f"no run has the param(s) {missing}; params that differ: "
            + ", ".join(k for k in keys if len({p.get(k) for p, _ in data}) > 1)
        )
    groups: dict[tuple, list[dict]] = {}
    for params, metrics in data:
        groups.setdefault(tuple(params.get(g, "-") for g in group_by), []).append(metrics)
    order = sorted(groups)
    header = ["", *[", ".join(f"{g}={v}" for g, v in zip(group_by, key)) for key in order]]
    rows = [["runs", *[str(len(groups[key])) for key in order]]]
    for k in metric_keys:
        cells = []
        for key in order:
            values = np.array([m[k] for m in groups[key] if k in m])
            std = f" ± {values.std(ddof=1):.3g}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.4g}{std}" if len(values) else "-")
        rows.append([f"metric {k}", *cells])
    return _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows])


REGISTERED_PREFIX = "hi3dgen-"  # registered models: hi3dgen-nirne, hi3dgen-shape_vae, hi3dgen-norld


def registered_models(run_id: str) -> dict[str, str]:
    """`kind -> local model.pt` of the models registered from a run or from its child runs (the
    stages of a `hi3dgen run`, where a stage DVC skipped stands for the earlier run of that stage
    with the same outputs); the newest version of each kind wins."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    setup()
    client = MlflowClient()
    run = client.get_run(run_id)
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=500)
    run_ids = {run_id, *(c.info.run_id for c in children)}
    for child in children:  # a stage DVC skipped trained nothing: its models are those of the runs that
        run_ids |= {r.info.run_id for r in made_the_same(client, child)}  # made the same outputs
    found: dict[str, tuple[int, str]] = {}
    for rid in run_ids:
        for version in client.search_model_versions(f"run_id = '{rid}'"):
            if not version.name.startswith(REGISTERED_PREFIX):
                continue
            kind = version.name[len(REGISTERED_PREFIX) :]
            if kind not in found or int(version.version) > found[kind][0]:
                found[kind] = (int(version.version), version.source)
    return {kind: str(Path(download_artifacts(artifact_uri=src)) / "model.pt") for kind, (_, src) in found.items()}
