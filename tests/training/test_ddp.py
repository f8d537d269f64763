"""Two CPU ranks (gloo) under torchrun, for NiRNE and for NoRLD with its regularizer: the same
weights and EMA on both, one checkpoint."""

import dataclasses
import json
import subprocess
import sys

import pytest

from hi3dgen.training.tracking import TrackingConfig
from hi3dgen.training.vae import preset_config as vae_preset
from hi3dgen.training.vae import train_vae

NIRNE = '''
from hi3dgen.training.nirne import preset_config, NiRNETrainer, build_model, build_data
cfg = preset_config("tiny")
cfg.data = dataclasses.replace(cfg.data, toy_train=16, toy_size=24, batch_size=2, val_samples=4)
cfg.data.augment = dataclasses.replace(cfg.data.augment, resolution=16)
cfg.trainer = dataclasses.replace(cfg.trainer, steps=4, log_every=2, ckpt_every=2)
cfg.tracking.enabled = False
env = init_distributed()
t = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), sys.argv[1])
'''

NORLD = '''
from hi3dgen.inference.checkpoints import load_vae
from hi3dgen.training.norld import NoRLDTrainer, build_model, preset_config
from hi3dgen.training.vae import build_data
cfg = preset_config("tiny", sys.argv[2])
cfg.data = dataclasses.replace(cfg.data, toy_train=8, batch_size=2, val_shapes=1)
cfg.reg = dataclasses.replace(cfg.reg, max_samples=1, views=1)
cfg.stats_batches = 1
cfg.trainer = dataclasses.replace(cfg.trainer, steps=4, log_every=2, ckpt_every=2)
cfg.tracking.enabled = False
env = init_distributed()
vae = load_vae(cfg.vae)
t = NoRLDTrainer(cfg, build_model(cfg, vae, "cpu"), vae, build_data(cfg.data, cfg.trainer.seed), sys.argv[1])
'''

WORKER = '''
import dataclasses, json, sys, torch
torch.set_num_threads(1)
from hi3dgen.training.trainer import init_distributed
{setup}
t.train()
w = sum(p.double().sum().item() for p in t.model.state_dict().values())
e = sum(p.double().sum().item() for p in t.ema.shadow.values())
print("RESULT", json.dumps({"rank": env.rank, "world": env.world_size, "w": w, "e": e, "consumed": t.data.consumed}))
'''


def _vae(tmp_path) -> str:
    cfg = vae_preset("tiny", tracking=TrackingConfig(enabled=False))
    cfg.data = dataclasses.replace(cfg.data, toy_train=8, val_shapes=1)
    cfg.trainer = dataclasses.replace(cfg.trainer, steps=2, ckpt_every=1000)
    train_vae(cfg, str(tmp_path / "vae"))
    return str(tmp_path / "vae" / "model.pt")


@pytest.mark.parametrize("model", ["nirne", "norld"])
def test_two_ranks_stay_in_sync(tmp_path, model):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("{setup}", NIRNE if model == "nirne" else NORLD))
    extra = [_vae(tmp_path)] if model == "norld" else []
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         str(tmp_path / "run"), *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line.split("RESULT ", 1)[1]) for line in proc.stdout.splitlines() if "RESULT " in line]
    assert sorted(r["rank"] for r in rows) == [0, 1] and all(r["world"] == 2 for r in rows)
    assert rows[0]["w"] == rows[1]["w"] and rows[0]["e"] == rows[1]["e"]
    assert rows[0]["consumed"] == rows[1]["consumed"] == 8
    assert [p.name for p in (tmp_path / "run/checkpoints").iterdir()] == ["last.pt"]
