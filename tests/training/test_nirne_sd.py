"""NiRNE's sd backbone end to end from a tiny diffusers checkpoint (random weights, diffusers format):
stage 1 learns, stage 2 keeps the clean stream bit-identical, eval and predict-normal run on it."""

import json

import cv2
import numpy as np
import torch

import hi3dgen_cli
from hi3dgen import checkpoint
from hi3dgen.data import codec
from hi3dgen.inference.checkpoints import nirne_from_state
from hi3dgen.training.cli import parse
from hi3dgen.training.nirne import NiRNETrainer, build_data, build_model
from tests.models.test_nirne_sd import HINT, save_tiny_backbone


def run_cli(argv: list[str]) -> int:
    args = hi3dgen_cli.parse_args(argv)
    return args.func(args)


def test_two_stages_from_a_diffusers_checkpoint_then_eval_and_predict(tmp_path):
    ckpt = save_tiny_backbone(tmp_path / "sd")
    hint = [str(c) for c in HINT]
    argv = ["--preset", "tiny", "--data", "toy", "--out", str(tmp_path / "s1"), "--no-tracking", "--backbone", "sd"]
    argv += ["--backbone-from", str(ckpt), "--model.sd.hint-channels", *hint, "--steps", "50", "--ckpt-every", "50"]
    cmd = parse("nirne", [*argv, "--data.toy-train", "64", "--data.val-samples", "8", "--trainer.log-every", "1"])
    assert cmd.run.model.backbone == "sd" and cmd.run.model.sd.backbone_from == str(ckpt)
    torch.manual_seed(0)
    s1 = NiRNETrainer(cmd.run, build_model(cmd.run), build_data(cmd.run), cmd.out)
    s1.train()
    loss = [h["train/loss"] for h in s1.history]
    assert np.mean(loss[-10:]) < 0.4 * np.mean(loss[:5])

    last1 = tmp_path / "s1/checkpoints/last.pt"
    state1 = checkpoint.load(last1)
    assert state1["config"]["model"]["sd"]["unet"]["block_out_channels"] == [16, 32]
    before = nirne_from_state(state1, "stage 1").state_dict()  # what stage 2 starts from (the EMA weights)
    run2 = tmp_path / "s2"
    # stage 2 takes its model from --init; stage 1's model flags (as the pipeline passes them) do not matter
    backbone = ["--backbone", "sd", "--backbone-from", str(ckpt)]
    common = ["--preset", "tiny", "--steps", "4", "--batch-size", "4", "--no-tracking", "--data", "toy", *backbone]
    assert run_cli(["train", "nirne", "--stage", "2", "--init", str(last1), "--out", str(run2), *common]) == 0
    after = checkpoint.load(run2 / "checkpoints/last.pt")
    assert after["config"]["model"]["backbone"] == "sd" and after["config"]["model"]["sd"]["backbone_from"] is None
    clean = [k for k in before if k.startswith("clean_stream.")]
    assert clean and all(torch.equal(before[k], after["model"][k]) for k in clean)
    assert all(torch.equal(before[k], after["ema"]["shadow"][k]) for k in clean)
    assert not all(torch.equal(before[k], after["model"][k]) for k in before if k.startswith("noisy_stream."))

    out = tmp_path / "metrics.json"
    eval_args = ["eval", "nirne", "--checkpoint", str(run2 / "model.pt"), "--data", "toy", "--limit", "4"]
    assert run_cli([*eval_args, "--out", str(out)]) == 0
    assert {"NE", "SNE", "median"} <= set(json.loads(out.read_text()))
    rgb = np.full((23, 37, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "odd.png"), rgb)
    pred = tmp_path / "pred"
    assert (
        run_cli(
            ["predict-normal", "--checkpoint", str(run2 / "model.pt"), "--out", str(pred), str(tmp_path / "odd.png")]
        )
        == 0
    )
    n = codec.normal_from_raw(codec.decode_normal_raw((pred / "odd.normal.png").read_bytes()))
    assert n.shape == (23, 37, 3) and np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-3)
