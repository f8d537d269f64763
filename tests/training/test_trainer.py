"""The trainer core through NiRNE's tiny preset on toy views: resume, checkpoints (the last k, the
best), gradient accumulation, schedule, EMA, MLflow (a real sqlite store)."""

import dataclasses

import numpy as np
import pytest
import torch

import hi3dgen_cli
from hi3dgen import checkpoint
from hi3dgen.config import build
from hi3dgen.training.ema import EMA
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer, build_data, build_model
from hi3dgen.training.optim import OptimConfig, warmup_cosine
from hi3dgen.training.trainer import TrainerConfig
from tests.training.regression import regression


def tiny(steps=12, **trainer):
    data = {"batch_size": 4, "toy_train": 12, "toy_size": 24, "val_samples": 4, "vis_samples": 2}
    return build(
        NiRNERunConfig,
        "tiny",
        {"tracking.enabled": False, "data": {**data, "augment.resolution": 16}},
        {"trainer": {"steps": steps, "log_every": 1, "ckpt_every": 5, **trainer}},
    )


def trainer(cfg, out, init_seed=0):
    torch.manual_seed(init_seed)
    return NiRNETrainer(cfg, build_model(cfg), build_data(cfg), out)


def losses(t):
    return [h["train/loss"] for h in t.history]


def evaluate(t) -> dict[str, float]:
    """`t.evaluate()` of the weights now in `t.model`."""
    t.model.eval()
    with torch.no_grad():
        return t.evaluate()


def test_killed_run_resumes_on_the_same_curve(tmp_path):
    cut = tiny(val_every=4, best_mode="max")  # the highest NE comes first: best.pt must survive the cut
    full = trainer(cut, tmp_path / "full")
    full.train()
    first = trainer(cut, tmp_path / "cut")
    first.train(stop_at=5)
    assert first.step == 5 and (tmp_path / "cut/checkpoints/last.pt").exists()
    resumed = trainer(cut, tmp_path / "cut", init_seed=123)  # a fresh process: other init, other RNG
    resumed.train()
    assert losses(first) + losses(resumed) == losses(full)
    a, b = (checkpoint.load(p / "checkpoints/last.pt") for p in (tmp_path / "full", tmp_path / "cut"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["data"] == b["data"] == {"consumed": 12 * 4} and len(a["rng"]) == 1
    a, b = (checkpoint.load(p / "checkpoints/best.pt") for p in (tmp_path / "full", tmp_path / "cut"))
    assert a["step"] == b["step"] == 4 and a["value"] == b["value"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_run_past_its_time_limit_checkpoints_and_the_same_command_resumes_it(tmp_path, capsys):
    full = trainer(tiny(), tmp_path / "full")
    full.train()
    first = trainer(tiny(time_limit=1e-9), tmp_path / "cut")  # over the limit after the first step
    first.train()
    assert first.step == 1 and checkpoint.load(tmp_path / "cut/checkpoints/last.pt")["step"] == 1
    assert not (tmp_path / "cut/model.pt").exists()
    said = capsys.readouterr().err
    assert "step 1/12 " in said and "time limit of 1e-09 s reached at step 1" in said
    resumed = trainer(tiny(), tmp_path / "cut", init_seed=123)
    resumed.train()
    assert resumed.step == 12 and losses(first) + losses(resumed) == losses(full)


def test_checkpoints_keep_the_last_k_and_delete_only_their_own(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    mine = ("notes.pt", "step_1.pt", "step_00000002.pt.bak")
    for name in mine:
        (ckpts / name).write_text("not the trainer's")
    trainer(tiny(steps=7, ckpt_every=2, keep_last=2), tmp_path).train()
    assert sorted(p.name for p in ckpts.iterdir()) == sorted(
        ["best.pt", "last.pt", "step_00000006.pt", "step_00000007.pt", *mine]
    )
    assert (ckpts / "last.pt").samefile(ckpts / "step_00000007.pt")  # one file, two names
    assert checkpoint.load(ckpts / "step_00000006.pt")["step"] == 6
    assert all((ckpts / name).read_text() == "not the trainer's" for name in mine)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_best_checkpoint_holds_the_weights_of_the_best_validation(tmp_path, mode):
    trainer(tiny(steps=9, val_every=3, ckpt_every=3, keep_last=0, best_mode=mode), tmp_path).train()
    judge = trainer(tiny(), tmp_path / "judge")  # evaluates the weights of each checkpoint on the same val views
    ne = {}
    for step, path in checkpoint.step_files(tmp_path / "checkpoints").items():
        judge.model.load_state_dict(checkpoint.usable_weights(checkpoint.load(path)))
        ne[step] = evaluate(judge)["NE"]
    assert sorted(ne) == [3, 6, 9] and len(set(ne.values())) == 3
    best = checkpoint.load(tmp_path / "checkpoints/best.pt")
    assert set(best) == {"kind", "config", "model", "step", "metric", "value"} and best["metric"] == "val/NE"
    assert best["step"] == (min if mode == "min" else max)(ne, key=ne.get)
    assert best["value"] == pytest.approx(ne[best["step"]], rel=1e-9)
    judge.model.load_state_dict(best["model"])
    assert evaluate(judge)["NE"] == pytest.approx(best["value"], rel=1e-9)


def test_an_unknown_best_metric_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"best_metric 'val/nope' is not a val metric of nirne \(those are \['val/NE'"):
        trainer(tiny(steps=1, best_metric="val/nope"), tmp_path).train()


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    whole, halves = regression(tmp_path / "whole", 8), regression(tmp_path / "halves", 4, grad_accum=2)
    whole.train()
    halves.train()
    for p, q in zip(whole.model.parameters(), halves.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6) and torch.allclose(p.grad, q.grad, atol=1e-6)  # the last step's
    assert losses(halves) == pytest.approx(losses(whole), rel=1e-6)
    assert whole.data.consumed == halves.data.consumed == 3 * 8
    single = regression(tmp_path / "single", 4)
    single.train()
    assert not torch.allclose(single.model.weight, halves.model.weight, atol=1e-4)  # accumulation changed the steps


def test_checkpoint_and_exported_model(tmp_path):
    t = trainer(tiny(steps=3), tmp_path)
    t.train()
    state = checkpoint.load(tmp_path / "checkpoints/last.pt")
    assert {"model", "optimizer", "scheduler", "ema", "step", "data", "rng", "best", "config", "kind"} <= set(state)
    assert state["step"] == 3 and state["kind"] == "nirne" and state["config"]["model"]["width"] == 16
    exported = checkpoint.load(tmp_path / "model.pt")
    assert exported["kind"] == "nirne" and exported["model"].keys() == state["model"].keys()
    assert not any(p.name.startswith("last.pt.tmp") for p in (tmp_path / "checkpoints").iterdir())
    (tmp_path / "torn.pt").write_bytes((tmp_path / "model.pt").read_bytes()[:1000])
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "dict.pt")
    for name, says in [
        ("torn.pt", "is not a checkpoint torch can read"),
        ("text.pt", "is not a checkpoint torch can read"),
        ("empty.pt", "is empty (0 bytes)"),
        ("tensor.pt", "holds a Tensor, not a model or checkpoint"),
        ("dict.pt", "holds a dict without 'kind'"),
    ]:
        with pytest.raises(ValueError, match=f"{name} {says}".replace("(", r"\(").replace(")", r"\)")):
            checkpoint.load(tmp_path / name)


def test_a_foreign_file_as_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.pt").write_text("my notes")
    image = tmp_path / "in.png"
    image.write_bytes(b"")
    argv = ["predict-normal", "--checkpoint", str(tmp_path / "notes.pt"), "--out", str(tmp_path / "out"), str(image)]
    assert hi3dgen_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"hi3dgen predict-normal: error: {tmp_path / 'notes.pt'} is not a checkpoint")
        and len(err.splitlines()) == 1
    )


@pytest.mark.parametrize(
    "field,value,says",
    [
        ("steps", -1, "steps must be at least 1"),
        ("steps", 0, "steps must be at least 1"),
        ("log_every", -1, "log_every must be 0 or more"),
        ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\)"),
        ("keep_last", -1, "keep_last must be 0 or more"),
        ("grad_accum", 0, "grad_accum must be at least 1"),
        ("time_limit", -5.0, "time_limit must be 0 or more"),
        ("best_mode", "lowest", "best_mode must be one of"),
        ("optim", OptimConfig(lr=float("nan")), "lr must be a positive number"),
    ],
)
def test_trainer_config_values_are_checked(field, value, says):
    with pytest.raises(ValueError, match=says):
        TrainerConfig(**{field: value})


def test_bad_steps_stop_the_command_before_any_work(tmp_path, capsys):
    argv = [
        "train",
        "nirne",
        "--data",
        "toy",
        "--preset",
        "tiny",
        "--steps",
        "-1",
        "--no-tracking",
        "--out",
        str(tmp_path / "run"),
    ]
    with pytest.raises(SystemExit) as exit:  # tyro's parse error: exit status 2 and the config's message
        hi3dgen_cli.main(argv)
    assert exit.value.code == 2
    assert "steps must be at least 1, not -1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_warmup_then_cosine():
    f = [warmup_cosine(s, total=110, warmup=10, min_ratio=0.1) for s in range(111)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.55) and f[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


def test_ema_averages_and_swaps_back():
    m = torch.nn.Linear(2, 1)
    ema = EMA(m, decay=0.5)
    start = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    for _ in range(20):
        ema.update(m)
    assert torch.allclose(ema.shadow["weight"], m.weight, atol=1e-4)
    with torch.no_grad():
        m.weight.copy_(start)
    with ema.applied(m):
        assert torch.allclose(m.weight, start + 1, atol=1e-4)
    assert torch.equal(m.weight, start)


def test_mlflow_tracking_for_real(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("HI3DGEN_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    cfg = tiny(steps=4, val_every=2, vis_every=4)
    cfg = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, enabled=True, experiment="nirne-test"))
    t = trainer(cfg, tmp_path / "run")
    t.train()
    client = MlflowClient(uri)
    run = client.get_run(t.tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.width"] == "16" and run.data.params["stage"] == "1"
    assert run.data.tags["hi3dgen.stage"] == "nirne_stage1"
    assert {"train/loss", "train/lr", "train/samples_per_s", "val/NE", "val/SNE"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"val_grid", "model", "loss_curves"} <= arts
    curves = client.list_artifacts(run.info.run_id, "loss_curves")
    assert [a.path for a in curves] == ["loss_curves/step_00000004.png"] and curves[0].file_size > 1000
    grid = client.list_artifacts(run.info.run_id, "val_grid")[0]
    assert grid.path.endswith(".png")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.pt"]
    location = client.get_experiment(run.info.experiment_id).artifact_location
    assert location.startswith((tmp_path / "state").as_uri())
    img = np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).open(
            client.download_artifacts(run.info.run_id, grid.path, str(tmp_path))
        )
    )
    assert img.shape == (2 * 16, 4 * 16, 3)  # 2 samples x (input | prediction | ground truth | error)


def test_a_locked_mlflow_store_delays_metrics_but_loses_none(tmp_path, monkeypatch, capsys):
    import sqlite3

    from mlflow.tracking import MlflowClient

    from hi3dgen.training.tracking import Tracker, TrackingConfig

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setenv("HI3DGEN_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    tracker = Tracker(TrackingConfig(experiment="lock-test"))
    tracker.start({"a": 1})
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, past MLflow's 20 s busy timeout
    tracker.log_metrics({"train/loss": 2.0}, 1)  # waits 20 s, then keeps the value
    assert "is locked" in capsys.readouterr().err
    holder.execute("COMMIT")  # the other writer is done
    tracker.log_metrics({"train/loss": 1.0}, 2)
    tracker.end()
    history = MlflowClient().get_metric_history(tracker.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.0), (2, 1.0)]
