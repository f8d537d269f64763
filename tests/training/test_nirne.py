"""NiRNE end to end on tiny data: learning, stage 2, domains, and the CLI (import-pairs, train,
eval, predict-normal)."""

import argparse
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

import hi3dgen_cli
from hi3dgen import checkpoint
from hi3dgen.config import add_nested_command, build
from hi3dgen.data import codec, toy
from hi3dgen.data.webds import view_dataset
from hi3dgen.eval.nirne import evaluate_views
from hi3dgen.inference.checkpoints import load_nirne
from hi3dgen.training.cli import parse, register
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer, build_data, build_model


def run_cli(argv: list[str]) -> int:
    args = hi3dgen_cli.parse_args(argv)
    return args.func(args)


def write_pairs(root, domain, n, size=32, seed=0):
    images, normals = root / f"{domain}_img", root / f"{domain}_nrm"
    images.mkdir(parents=True)
    normals.mkdir(parents=True)
    for s in toy.toy_samples(n, size, domain, seed):
        img = (s["image"].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        (images / f"{s['key']}.png").write_bytes(codec.encode_rgb(img))
        (normals / f"{s['key']}.normal.png").write_bytes(codec.encode_normal(s["normal"].transpose(1, 2, 0), s["mask"]))
    return images, normals


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    out = {}
    for i, domain in enumerate(("real", "synthetic")):
        images, normals = write_pairs(root, domain, 24, seed=i)
        out[domain] = root / f"shards_{domain}"
        assert (
            run_cli(
                [
                    "import-pairs",
                    "--images",
                    str(images),
                    "--normals",
                    str(normals),
                    "--out",
                    str(out[domain]),
                    "--domain",
                    domain,
                    "--val-fraction",
                    "0.2",
                    "--samples-per-shard",
                    "8",
                ]
            )
            == 0
        )
    return out


def test_import_pairs_round_trips_losslessly(shard_dirs, tmp_path):
    index = json.loads((shard_dirs["real"] / "shards.json").read_text())
    views = index["sets"]["views"]
    assert views["train"]["samples"] + views["val"]["samples"] == 24 and views["val"]["samples"] > 0
    sample = next(iter(view_dataset(shard_dirs["real"], "train", "real")))
    src = {s["key"]: s for s in toy.toy_samples(24, 32, "real", 0)}[sample["key"].rsplit("_", 1)[0]]
    assert np.abs(sample["normal"] - src["normal"]).max() < 2e-5 and np.array_equal(sample["mask"], src["mask"])
    assert np.abs(sample["image"] - src["image"]).max() <= 0.5 / 255 + 1e-6
    # one unmatched image and one unreadable one are rejected rows, the rest still imports
    images, normals = write_pairs(tmp_path, "real", 2)
    (images / "lonely.png").write_bytes(codec.encode_rgb(np.zeros((8, 8, 3), np.uint8)))
    (images / "broken.png").write_bytes(b"not a png")
    (normals / "broken.png").write_bytes(b"not a png")
    run_cli(["import-pairs", "--images", str(images), "--normals", str(normals), "--out", str(tmp_path / "s")])
    lines = (tmp_path / "s/manifest.jsonl").read_text().splitlines()
    rows = {json.loads(line)["asset_id"]: json.loads(line) for line in lines}
    assert rows["lonely"]["reason"].startswith("no_normal_map") and rows["broken"]["status"] == "rejected"
    assert sum(r["status"] == "accepted" for r in rows.values()) == 2


def test_domain_without_samples_is_a_clear_error(shard_dirs, tmp_path):
    with pytest.raises(ValueError, match="domain 'real'"):
        run_cli(
            [
                "train",
                "nirne",
                "--stage",
                "1",
                "--preset",
                "tiny",
                "--data",
                str(shard_dirs["synthetic"]),
                "--out",
                str(tmp_path / "run"),
                "--no-tracking",
            ]
        )


def test_learns_then_stage2_keeps_clean_stream_frozen(tmp_path):
    cfg = build(
        NiRNERunConfig,
        "tiny",
        {"data": {"toy_train": 64, "val_samples": 16}, "trainer": {"steps": 80, "ckpt_every": 80, "log_every": 1}},
        {"tracking.enabled": False},
    )
    torch.manual_seed(0)
    s1 = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), tmp_path / "s1")
    metrics = s1.train()
    loss = [h["train/loss"] for h in s1.history]
    assert np.mean(loss[-10:]) < 0.4 * np.mean(loss[:5])
    # better than the best constant guess (facing the camera) on held-out views
    flat = s1._val_views()
    from hi3dgen.eval.normals import NormalMetrics

    base = NormalMetrics()
    for v in flat:
        base.add(np.broadcast_to(np.array([0, 0, 1.0])[:, None, None], v["normal"].shape), v["normal"], v["mask"])
    assert metrics["val/NE"] < base.result()["NE"] - 3

    stage2 = {"stage": 2, "init": str(tmp_path / "s1/checkpoints/last.pt"), "tracking.enabled": False}
    cfg2 = build(NiRNERunConfig, "tiny", stage2, {"data": {"toy_train": 16, "val_samples": 4}, "trainer.steps": 10})
    model = build_model(cfg2)
    assert cfg2.domain == "synthetic" and model.clean_frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s2 = NiRNETrainer(cfg2, model, build_data(cfg2), tmp_path / "s2")
    s2.train()
    after = checkpoint.load(tmp_path / "s2/checkpoints/last.pt")
    clean = [k for k in before if k.startswith("clean_stream.")]
    assert clean and all(torch.equal(before[k], after["model"][k]) for k in clean)
    assert all(torch.equal(before[k], after["ema"]["shadow"][k]) for k in clean)
    assert not all(torch.equal(before[k], after["model"][k]) for k in before if k.startswith("noisy_stream."))
    assert not any(p.requires_grad for p in model.clean_stream.parameters()) and not model.clean_stream.training


def test_presets_ablations_and_their_refusals(tmp_path):
    """Presets are files with debug twins; the ablations are flags over any preset; configs are frozen."""
    assert build(NiRNERunConfig, "base").model.width == 128 and build(NiRNERunConfig, "tiny").model.width == 16
    debug = build(NiRNERunConfig, "small.debug")
    assert debug.model == build(NiRNERunConfig, "small").model and debug.trainer.steps < 10
    argv = ["--data", "toy", "--out", "x", "--preset", "tiny", "--no-noise", "--no-dual-stream", "--stages", "1"]
    c = parse("nirne", argv).run
    assert not c.model.noise.enabled and not c.model.dual_stream and c.domain == "any" and c.model.width == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.trainer.steps = 3
    with pytest.raises(ValueError, match="no stage 2"):
        build(NiRNERunConfig, "tiny", {"stages": [1], "stage": 2, "init": "x.pt"})
    with pytest.raises(ValueError, match="--init"):
        build(NiRNERunConfig, "tiny", {"stage": 2})
    with pytest.raises(ValueError, match="unknown nirne preset 'huge'"):
        build(NiRNERunConfig, "huge")
    with pytest.raises(ValueError, match="unknown config key 'trainer.stpes'"):
        build(NiRNERunConfig, "tiny", {"trainer.stpes": 3})
    with pytest.raises(ValueError, match="'model.width' is int, not str"):
        build(NiRNERunConfig, "tiny", {"model": {"width": "wide"}})


def test_cli_stage1_stage2_eval_predict(shard_dirs, tmp_path, capsys):
    common = ["--preset", "tiny", "--steps", "6", "--batch-size", "4", "--no-tracking", "--resolution", "16"]
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    assert (
        run_cli(["train", "nirne", "--stage", "1", "--data", str(shard_dirs["real"]), "--out", str(run1), *common]) == 0
    )
    assert (
        run_cli(
            [
                "train",
                "nirne",
                "--stage",
                "2",
                "--init",
                str(run1 / "checkpoints/last.pt"),
                "--data",
                str(shard_dirs["synthetic"]),
                "--out",
                str(run2),
                *common,
            ]
        )
        == 0
    )
    state = checkpoint.load(run2 / "checkpoints/last.pt")
    assert state["step"] == 6 and state["config"]["stage"] == 2 and state["config"]["data"]["domain"] is None

    out = tmp_path / "metrics.json"
    assert (
        run_cli(
            [
                "eval",
                "nirne",
                "--checkpoint",
                str(run2 / "model.pt"),
                "--data",
                str(shard_dirs["synthetic"]),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads(out.read_text())
    assert {"SNE", "median", "pct_11.25", "pct_22.5", "pct_30"} <= set(m)
    # The figures are those of the model on those views: recomputed here from predict_image.
    model = load_nirne(run2 / "model.pt")
    again = evaluate_views(model, view_dataset(shard_dirs["synthetic"], split="val"))
    assert m["NE"] == pytest.approx(again["NE"], rel=1e-6) and m["SNE"] == pytest.approx(again["SNE"], rel=1e-6)

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rgba = np.zeros((23, 37, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[:, 10:, 3] = 255  # alpha 0 on the left: background
    cv2.imwrite(str(imgs / "odd.png"), rgba)
    (imgs / "bad.png").write_bytes(b"garbage")
    pred = tmp_path / "pred"
    code = run_cli(
        [
            "predict-normal",
            "--checkpoint",
            str(run2 / "checkpoints/last.pt"),
            "--out",
            str(pred),
            str(imgs / "bad.png"),
            str(imgs / "odd.png"),
        ]
    )
    assert code == 1 and "bad.png: not a readable image" in capsys.readouterr().err
    raw = codec.decode_normal_raw((pred / "odd.normal.png").read_bytes())
    assert raw.shape == (23, 37, 3) and not raw[:, :10].any() and raw[:, 10:].all(-1).all()
    n = codec.normal_from_raw(raw)[:, 10:]
    assert np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-3)
    assert (pred / "odd.preview.png").exists()
    first = (pred / "odd.normal.png").read_bytes()
    again = [
        "predict-normal",
        "--checkpoint",
        str(run2 / "checkpoints/last.pt"),
        "--out",
        str(pred),
        str(imgs / "odd.png"),
    ]
    assert run_cli(again) == 1 and "odd.normal.png exists; not overwritten" in capsys.readouterr().err
    assert run_cli([*again, "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == f"{imgs / 'odd.png'} -> {pred / 'odd.normal.png'}"
    assert (pred / "odd.normal.png").read_bytes() == first  # no noise at inference: deterministic


def test_train_group_is_extensible():
    parser = argparse.ArgumentParser(prog="hi3dgen")
    sub = parser.add_subparsers(dest="command", required=True)
    add_nested_command(sub, "train", "extra", help="another model").set_defaults(func=lambda a: "extra")
    register(sub)
    args = parser.parse_args(["train", "extra"])
    assert args.func(args) == "extra"
    args, rest = parser.parse_known_args(["train", "nirne", "--data", "toy", "--out", "x"])
    assert args.takes_argv and rest == ["--data", "toy", "--out", "x"]
    cmd = parse("nirne", rest)
    assert cmd.run.preset == "base" and cmd.run.stage == 1 and cmd.out == "x" and cmd.run.data.shards == "toy"
