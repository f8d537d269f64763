"""Ray Train's TorchTrainer runs the same per-worker function on two CPU workers (gloo): rank 0
alone writes the checkpoint and logs one MLflow run."""

import pytest

from hi3dgen.config import build
from hi3dgen.training.launch import LaunchConfig, launch
from hi3dgen.training.nirne import NiRNERunConfig, train_nirne

pytestmark = pytest.mark.slow


def test_ray_train_two_workers(tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("HI3DGEN_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    ray.shutdown()  # a fresh local Ray that forwards this test's environment to the workers
    data = {"toy_train": 16, "toy_size": 24, "batch_size": 2, "val_samples": 4, "augment.resolution": 16}
    trainer = {"steps": 4, "log_every": 2, "ckpt_every": 2}
    cfg = build(NiRNERunConfig, "tiny", {"data": data, "trainer": trainer, "tracking.run_name": "ddp"})
    try:
        launch(train_nirne, cfg, str(tmp_path / "run"), LaunchConfig(workers=2))
    finally:
        ray.shutdown()
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.pt", "last.pt", "step_00000002.pt", "step_00000004.pt"]
    assert (ckpts / "last.pt").samefile(ckpts / "step_00000004.pt")
    assert (tmp_path / "run" / "model.pt").exists()

    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("hi3dgen").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["train/loss"] > 0
    versions = client.search_model_versions("name = 'hi3dgen-nirne'")
    assert [v.run_id for v in versions] == [runs[0].info.run_id]  # registered once, by rank 0

    from hi3dgen import tracking

    model = tracking.registered_models(runs[0].info.run_id)["nirne"]
    assert open(model, "rb").read() == (tmp_path / "run" / "model.pt").read_bytes()
