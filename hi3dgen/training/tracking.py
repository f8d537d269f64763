"""MLflow logging of a training run through an explicit client (no global active run), on the
project's store (`hi3dgen.tracking`: MLFLOW_TRACKING_URI, else sqlite in the state dir).

The run is, in this order: the one a resumed checkpoint names, the flow's child run (MLFLOW_RUN_ID),
or a new run in `experiment`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Annotated

import numpy as np

from hi3dgen import tracking
from hi3dgen.config import flag


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    enabled: Annotated[bool, flag("--tracking")] = True  # log to MLflow (--no-tracking: do not)
    experiment: Annotated[str, flag("--experiment")] = tracking.EXPERIMENT
    run_name: str | None = None


class Tracker:
    """One MLflow run. Disabled (every call a no-op) when `cfg.enabled` is false or on ranks > 0."""

    def __init__(self, cfg: TrackingConfig, active: bool = True):
        self.cfg = cfg
        self.active = cfg.enabled and active
        self.client = None
        self.run_id: str | None = None
        self._pending: list = []  # metric values the store has not taken yet (it was locked)

    def start(self, params: dict, run_id: str | None = None) -> str | None:
        """Open the run (see the module docstring) and log `params`."""
        if not self.active:
            return None
        from mlflow.tracking import MlflowClient

        exp_id = tracking.setup(self.cfg.experiment)
        self.client = MlflowClient(tracking.tracking_uri())
        run_id = run_id or os.environ.get("MLFLOW_RUN_ID")
        if run_id is None:
            tags = {**tracking.git_tags(), "hi3dgen.stage": self.cfg.run_name or "train"}
            run_id = self.client.create_run(exp_id, run_name=self.cfg.run_name, tags=tags).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self.log_params(params)
        return run_id

    def log_params(self, params: dict) -> None:
        """Log the params the run does not hold yet (MLflow refuses to change a logged param)."""
        from mlflow.entities import Param

        held = self.client.get_run(self.run_id).data.params
        items = [Param(k, v) for k, v in tracking.flatten(params).items() if k not in held]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.active or not metrics:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.flush(wait=False)

    def flush(self, wait: bool = True) -> None:
        """Send the metric values the store has not taken. A locked sqlite store (another process
        writing past MLflow's 20 s busy timeout) keeps them for the next call instead of stopping
        training, with a line on stderr; with `wait` (the run's end) the store must take them."""
        if not self.active:
            return
        from mlflow.exceptions import MlflowException

        while self._pending:
            batch = self._pending[:1000]  # MLflow's limit per batch
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except MlflowException as exc:
                if wait or "database is locked" not in str(exc):
                    raise
                print(
                    f"hi3dgen: the MLflow store {tracking.tracking_uri()} is locked; {len(self._pending)} metric "
                    "values are kept and sent with the next ones",
                    file=sys.stderr,
                    flush=True,
                )
                return
            del self._pending[: len(batch)]

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        if self.active:
            self.client.log_image(self.run_id, image, artifact_file=f"{name}/step_{step:08d}.png")

    def log_loss_curves(self, step: int) -> None:
        """The run's train/*loss curves as one image (`loss_curves/`), read back from the store so
        that a resumed run's picture holds all of its steps."""
        if not self.active:
            return
        self.flush()
        keys = [
            k for k in self.client.get_run(self.run_id).data.metrics if k.startswith("train/") and k.endswith("loss")
        ]
        curves = {k: [(m.step, m.value) for m in self.client.get_metric_history(self.run_id, k)] for k in keys}
        if curves:
            self.log_image("loss_curves", tracking.curves_image(curves), step)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.active:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def register_model(self, name: str, artifact_path: str) -> None:
        """A new version of registered model `name` from this run's `artifact_path`."""
        if not self.active:
            return
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException:  # it exists already
            pass
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"
        self.client.create_model_version(name, source, run_id=self.run_id)

    def end(self, status: str = "FINISHED") -> None:
        if self.active and self.run_id:
            self.flush()
            self.client.set_terminated(self.run_id, status)
