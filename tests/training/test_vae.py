import numpy as np
import pytest
import torch

from hi3dgen.config import build
from hi3dgen.models.shape_vae import ShapeVAE
from hi3dgen.synthesis.toy import toy_shape
from hi3dgen.training.vae import VAERunConfig, VAETrainer, build_data, train_vae


def tiny(steps: int, **trainer):
    data = {"toy_train": 8, "val_shapes": 2, "vis_shapes": 1}
    trainer = {"steps": steps, "log_every": 1, "ckpt_every": 10, **trainer}
    return build(VAERunConfig, "tiny", {"tracking.enabled": False, "data": data, "trainer": trainer})


def make_trainer(cfg, out):
    torch.manual_seed(cfg.trainer.seed)
    return VAETrainer(cfg, ShapeVAE(cfg.model), build_data(cfg.data, cfg.trainer.seed), out)


def test_toy_shapes_follow_the_shape_sample_contract():
    cfg = tiny(1).data
    s = toy_shape(0, 0, cfg)
    assert s["surface"].shape == (2048, 6) and s["sdf"].shape == (4096, 4)
    assert np.allclose(np.linalg.norm(s["surface"][:, 3:], axis=1), 1, atol=1e-5)
    assert np.ptp(s["surface"][:, :3], axis=0).max() == pytest.approx(1.0, abs=1e-3)  # unit cube
    v = len(s["normals"])
    assert s["normals"].shape == (v, 3, cfg.toy_size, cfg.toy_size) and s["masks"].shape == (
        v,
        cfg.toy_size,
        cfg.toy_size,
    )
    assert s["cameras"]["K"].shape == (v, 3, 3) and s["cameras"]["c2w"].shape == (v, 4, 4)
    inside = s["sdf"][:, 3] < 0
    assert 0 < inside.mean() < 1


def test_loss_falls_on_a_tiny_set(tmp_path):
    t = make_trainer(tiny(80), tmp_path / "run")
    t.train()
    losses = [h["train/loss"] for h in t.history]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:10])
    assert (tmp_path / "run" / "model.pt").exists()


def test_killed_run_resumes_on_the_same_curve(tmp_path):
    full = make_trainer(tiny(20), tmp_path / "full")
    full.train()
    first = make_trainer(tiny(20), tmp_path / "resumed")
    first.train(stop_at=10)
    second = make_trainer(tiny(20), tmp_path / "resumed")
    second.train()
    curve = [h["train/loss"] for h in full.history]
    assert [h["train/loss"] for h in first.history + second.history] == pytest.approx(curve, rel=1e-5)


def test_validation_reports_reconstruction_metrics(tmp_path):
    metrics = train_vae(tiny(2), str(tmp_path / "run"))
    assert {"val/chamfer", "val/fscore", "val/normal_consistency", "val/sdf_loss", "val/empty"} <= set(metrics)
    t = make_trainer(tiny(2), tmp_path / "run2")
    with t._eval_mode():
        grid = t.visualize()["vae_normals"]
    assert grid.dtype == np.uint8 and grid.shape == (32, 4 * 32, 3)  # gt | reconstruction, 2 views
