import dataclasses

import numpy as np
import pytest
import torch

from hi3dgen.config import build
from hi3dgen.data.shapes import prepare_shape
from hi3dgen.models.shape_vae import ShapeVAE
from hi3dgen.synthesis.toy import toy_shape
from hi3dgen.training.vae import VAERunConfig, VAETrainer, build_data, train_vae


def tiny(steps: int, sharp: float = 0.0, **trainer):
    data = {"toy_train": 8, "val_shapes": 2, "vis_shapes": 1}
    trainer = {"steps": steps, "log_every": 1, "ckpt_every": 10, **trainer}
    layer = {"tracking.enabled": False, "data": data, "trainer": trainer, "model.sharp_fraction": sharp}
    return build(VAERunConfig, "tiny", layer)


def make_trainer(cfg, out):
    torch.manual_seed(cfg.trainer.seed)
    return VAETrainer(cfg, ShapeVAE(cfg.model), build_data(cfg.data, cfg.trainer.seed), out)


def test_toy_shapes_follow_the_shape_sample_contract():
    cfg = tiny(1).data
    s = toy_shape(0, 0, cfg)
    assert s["surface"].shape == (32768, 6) and s["sdf"].shape == (4096, 4)
    assert s["sharp"].shape == (8192, 6)  # a box: its 12 edges
    assert (np.isclose(np.abs(s["sharp"][:, :3]), np.abs(s["sharp"][:, :3]).max(0), atol=1e-5).sum(1) >= 2).all()
    assert toy_shape(1, 0, cfg)["sharp"].shape == (0, 6)  # a sphere has none
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


def test_encoder_input_takes_its_share_from_sharp_edges():
    data = tiny(1, sharp=0.25).data
    box = toy_shape(0, 0, data)
    a, b = (prepare_shape(box, data, np.random.default_rng(4)) for _ in range(2))
    assert np.array_equal(a["surface"], b["surface"])  # deterministic for a seed
    n_sharp = round(0.25 * data.surface_points)
    assert a["surface"].shape == (data.surface_points, 6)
    sharp_rows = {tuple(r) for r in box["sharp"]}
    assert sum(tuple(r) in sharp_rows for r in a["surface"]) == n_sharp
    assert all(tuple(r) in sharp_rows for r in a["surface"][-n_sharp:])
    sphere = prepare_shape(toy_shape(1, 0, data), data, np.random.default_rng(4))  # no sharp edges: all uniform
    blocks = {**box, "sdf": np.arange(16000, dtype=np.float32).reshape(4000, 4)}
    rows = prepare_shape(blocks, data, None)["sdf"][:, 0] // 4  # validation's fixed rows
    assert len(set(rows)) == data.sdf_points and rows.min() == 0 and rows.max() > 3900  # every block, not the first
    assert sphere["surface"].shape == (data.surface_points, 6)


@pytest.mark.parametrize("queries", ["learned", "fps"])
def test_loss_falls_and_signs_are_learned_on_a_tiny_set(tmp_path, queries):
    cfg = tiny(80)
    t = make_trainer(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, queries=queries)), tmp_path / "run")
    t.train()
    losses = [h["train/loss"] for h in t.history]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:10])
    signs = [h["train/sign_acc"] for h in t.history]
    assert np.mean(signs[-20:]) > np.mean(signs[:10]) + 0.05
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
