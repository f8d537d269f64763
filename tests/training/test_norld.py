import dataclasses

import numpy as np
import pytest
import torch

from hi3dgen.config import build
from hi3dgen.inference.checkpoints import load_vae
from hi3dgen.training.norld import NoRLDTrainer, build_model, run_config
from hi3dgen.training.vae import VAERunConfig, build_data, train_vae
from tests import gltf


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    torch.set_num_threads(1)
    small = {"data": {"toy_train": 8, "val_shapes": 1}, "trainer": {"steps": 40, "ckpt_every": 1000}}
    cfg = build(VAERunConfig, "tiny", {"tracking.enabled": False, **small})
    out = tmp_path_factory.mktemp("vae")
    train_vae(cfg, str(out))
    return str(out / "model.pt")


def tiny(vae_path, steps: int, weight: float = 1.0, **reg):
    small = {
        "tracking.enabled": False,
        "data": {"toy_train": 8, "val_shapes": 2, "vis_shapes": 1},
        "reg": {"weight": weight, **reg},
        "sample.steps": 2,
        "stats_batches": 1,
        "trainer": {"steps": steps, "log_every": 1, "ckpt_every": 1000},
    }
    return run_config("tiny", vae_path, small)


def make_trainer(cfg, out):
    vae = load_vae(cfg.vae)
    return NoRLDTrainer(cfg, build_model(cfg, vae, "cpu"), vae, build_data(cfg.data, cfg.trainer.seed), out)


def test_flow_loss_falls(vae_path, tmp_path):
    t = make_trainer(tiny(vae_path, 100, weight=0.0), tmp_path / "run")
    t.train()
    flow = [h["train/flow_loss"] for h in t.history]
    assert np.mean(flow[-20:]) < 0.7 * np.mean(flow[:10])
    assert "train/normal_reg_loss" not in t.history[0]  # λ = 0: the regularizer never runs


def test_regularizer_is_nonzero_and_its_gradient_reaches_the_network(vae_path, tmp_path):
    t = make_trainer(tiny(vae_path, 1, t_min=0.0, t_max=1.0), tmp_path / "run")
    torch.nn.init.normal_(t.model.x_out.weight, std=0.05)  # as after some training: the output layer starts at 0
    batch = t._to_device(next(t.data))
    x0 = t.encode(batch["surface"])
    rows = torch.arange(2)
    tb = torch.full((2, 1, 1), 0.3)
    xt = (1 - tb) * x0[rows] + tb * torch.randn_like(x0[rows])
    v = t.model(xt, tb.flatten(), batch["cond"][rows])
    reg = t.normal_regularizer(t.model.denormalize(xt - tb * v), batch, rows)
    assert reg.item() > 0
    reg.backward()
    for name in ("x_out.weight", "image.patchify.weight", "blocks.0.cross.q.weight"):
        grad = dict(t.model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in t.vae.parameters())


def test_descending_the_regularizer_moves_a_latent_towards_the_ground_truth_normals(vae_path, tmp_path):
    """The regularizer's gradient points the right way: gradient steps on a latent alone (decode,
    extract, render, compare) lower the normal error of its mesh against a shape's views."""
    t = make_trainer(tiny(vae_path, 1), tmp_path / "run")
    batch = t._to_device(next(t.data))
    with torch.no_grad():  # another shape's latent, as a start far from this one
        z = t.vae.encode(batch["surface"][1:2]).mean.clone()
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    errors = []
    for _ in range(30):
        loss = t.normal_regularizer(z, batch, torch.tensor([0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        errors.append(loss.item())
    assert np.mean(errors[-5:]) < 0.85 * np.mean(errors[:3]), errors


def test_vae_stays_frozen_and_out_of_the_checkpoint(vae_path, tmp_path):
    t = make_trainer(tiny(vae_path, 3), tmp_path / "run")
    before = {k: v.clone() for k, v in t.vae.state_dict().items()}
    t.train()
    assert all(torch.equal(before[k], v) for k, v in t.vae.state_dict().items())
    vae_params = {id(p) for p in t.vae.parameters()}
    assert not any(id(p) in vae_params for g in t.optimizer.param_groups for p in g["params"])
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["kind"] == "norld" and not any(k.startswith("vae") for k in state["model"])
    assert state["config"]["vae"] == vae_path
    assert {"train/flow_loss", "train/normal_reg_loss"} <= set(t.history[-1])


def test_evaluation_reports_the_vae_reconstruction_once_and_the_chamfer_ratio(vae_path, tmp_path, monkeypatch):
    import math

    from hi3dgen.training import norld

    t = make_trainer(tiny(vae_path, 1), tmp_path / "run")
    calls = []
    measure = norld.evaluate_reconstruction
    monkeypatch.setattr(norld, "evaluate_reconstruction", lambda *a: calls.append(1) or measure(*a))
    with t._eval_mode():
        first, second = t.evaluate(), t.evaluate()
    keys = {"vae_chamfer", "vae_fscore", "vae_normal_consistency", "vae_empty", "chamfer_ratio"}
    assert keys <= set(first) and set(first) == set(second)
    assert len(calls) == 1  # one batch of the 2 val shapes, at the first evaluation only: the VAE is frozen
    assert first["vae_empty"] < 1 and math.isfinite(first["vae_chamfer"]) and first["vae_chamfer"] > 0
    assert all(math.isfinite(first[k]) for k in ("vae_fscore", "vae_normal_consistency"))
    assert {k: second[k] for k in keys - {"chamfer_ratio"}} == {k: first[k] for k in keys - {"chamfer_ratio"}}
    for figures in (first, second):
        ratio = figures["chamfer"] / figures["vae_chamfer"]
        assert math.isnan(figures["chamfer_ratio"]) if math.isnan(ratio) else figures["chamfer_ratio"] == ratio


def test_killed_run_resumes_on_the_same_curve(vae_path, tmp_path):
    cfg = tiny(vae_path, 8, share=0.5, max_samples=1)
    full = make_trainer(cfg, tmp_path / "full")
    full.train()
    first = make_trainer(cfg, tmp_path / "resumed")
    first.train(stop_at=4)
    second = make_trainer(cfg, tmp_path / "resumed")
    second.train()
    for key in ("train/flow_loss", "train/loss"):
        curve = [h[key] for h in full.history]
        assert [h[key] for h in first.history + second.history] == pytest.approx(curve, rel=1e-5), key


def test_mlflow_logs_losses_and_rendered_normals(vae_path, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("HI3DGEN_STATE", str(tmp_path / "state"))
    cfg = tiny(vae_path, 2)
    cfg = dataclasses.replace(
        cfg,
        trainer=dataclasses.replace(cfg.trainer, vis_every=2),
        tracking=dataclasses.replace(cfg.tracking, enabled=True, experiment="norld-test", run_name="norld"),
    )
    t = make_trainer(cfg, tmp_path / "run")
    t.train()
    client = MlflowClient(uri)
    run = client.get_run(t.tracker.run_id)
    assert {"train/flow_loss", "train/normal_reg_loss", "val/chamfer", "val/NE", "val/SNE"} <= set(run.data.metrics)
    assert run.data.params["reg.weight"] == "1.0"
    images = client.list_artifacts(run.info.run_id, "norld_normals")
    assert images and images[0].path.endswith(".png")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "loss_curves")] == ["loss_curves/step_00000002.png"]


@pytest.fixture(scope="module")
def cli_outputs(vae_path, tmp_path_factory):
    """`hi3dgen train norld`, `eval norld`, `train nirne` and `generate` on toy data: their folder."""
    import cv2

    import hi3dgen_cli

    def run(*argv):
        args = hi3dgen_cli.parse_args([str(a) for a in argv])
        return args.func(args)

    tmp_path = tmp_path_factory.mktemp("cli")
    norld, nirne = tmp_path / "norld", tmp_path / "nirne"
    assert (
        run(
            "train",
            "norld",
            "--data",
            "toy",
            "--vae",
            vae_path,
            "--out",
            norld,
            "--preset",
            "tiny",
            "--steps",
            2,
            "--reg.extract.resolution",
            16,
            "--no-tracking",
        )
        == 0
    )
    assert (
        run(
            "eval",
            "norld",
            "--norld",
            norld / "model.pt",
            "--vae",
            vae_path,
            "--data",
            "toy",
            "--out",
            tmp_path / "m.json",
            "--limit",
            1,
            "--steps",
            2,
            "--grid",
            24,
        )
        == 0
    )
    assert (
        run("train", "nirne", "--data", "toy", "--out", nirne, "--preset", "tiny", "--steps", 1, "--no-tracking") == 0
    )
    image = np.zeros((40, 50, 4), np.uint8)
    cv2.circle(image, (25, 20), 12, (200, 120, 60, 255), -1)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    assert (
        run(
            "generate",
            "--nirne",
            nirne / "model.pt",
            "--vae",
            vae_path,
            "--norld",
            norld / "model.pt",
            "--out",
            tmp_path / "gen" / "mesh.glb",
            "--steps",
            2,
            "--grid",
            33,
            tmp_path / "in.png",
        )
        == 0
    )
    return tmp_path


def test_cli_trains_evaluates_and_generates(cli_outputs):
    import json

    import cv2

    from hi3dgen.assets.mesh import load_glb
    from hi3dgen.data import codec

    metrics = json.loads((cli_outputs / "m.json").read_text())
    assert {"chamfer", "fscore", "normal_consistency", "NE", "SNE"} <= set(metrics)
    assert all(isinstance(v, (int, float)) or v is None for v in metrics.values())  # a DVC metrics file: numbers only
    mesh = load_glb(cli_outputs / "gen" / "mesh.glb")
    assert np.ptp(mesh.vertices, axis=0).max() == pytest.approx(1.0, abs=1e-4)  # the unit cube
    normal = codec.decode_normal((cli_outputs / "gen" / "mesh.normal.png").read_bytes())
    assert normal.shape == (40, 50, 3)
    # The preview: the input, its normal map, then the mesh from four views, each 256 x 256.
    preview = cv2.imread(str(cli_outputs / "gen" / "mesh.preview.png"), cv2.IMREAD_COLOR)
    assert preview.shape == (256, 6 * 256, 3)
    tiles = [preview[:, i * 256 : (i + 1) * 256] for i in range(6)]
    assert tiles[0][128, 128].tolist() == [200, 120, 60]  # the input file's pixel (BGR) at the circle
    assert not tiles[0][:20].any() and not tiles[1][:20].any()  # letterboxed: background above the image
    assert all(tile.any(axis=2).mean() > 0.02 for tile in tiles[2:])  # the mesh shows in every view


def test_generated_mesh_is_valid_gltf(cli_outputs):
    gltf.assert_valid([cli_outputs / "gen" / "mesh.glb"])
