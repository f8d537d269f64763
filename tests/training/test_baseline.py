"""A stored loss curve that later changes are compared against: a fixed tiny NiRNE run (CPU, fp32,
one thread) on the checked-in shard set `tests/data/fixtures/views-tiny` (4 procedural views at
16x16 through `import-pairs`: 3 train, 1 val) must give the first train/loss values of
`tests/training/baselines/nirne_tiny.json`.

A change meant to move the curve (a model, loss, optimizer or data change) regenerates it, and says so
in its commit:

    PYTHONPATH=$PWD .venv/bin/python -m tests.training.test_baseline             # the baseline
    PYTHONPATH=$PWD .venv/bin/python -m tests.training.test_baseline --fixture   # the shard set too
"""

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hi3dgen import io
from hi3dgen.config import build
from hi3dgen.data import codec, toy
from hi3dgen.sources.pairs import PairsConfig, import_pairs
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer, build_data, build_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/data/fixtures/views-tiny"
BASELINE = ROOT / "tests/training/baselines/nirne_tiny.json"
STEPS = 8
TOLERANCE = 1e-5  # relative: float differences between CPUs stay below it, real changes do not


def write_fixture(out: Path) -> None:
    """4 toy `real` views as image / normal-map files, imported as view shards."""
    views = toy.toy_samples(4, 16, "real", seed=0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # relative paths in the manifest
        for d in ("images", "normals"):
            Path(d).mkdir()
        for i, v in enumerate(views):
            rgb = (v["image"].transpose(1, 2, 0) * 255).round().astype(np.uint8)
            Path(f"images/view{i}.png").write_bytes(codec.encode_rgb(rgb))
            np.save(f"normals/view{i}.npy", v["normal"].transpose(1, 2, 0))
        import_pairs("images", "normals", out, PairsConfig(domain="real", val_fraction=0.25))


def curve() -> list[float]:
    """train/loss of the fixed run, step by step."""
    data = {"shards": str(FIXTURE), "batch_size": 2, "val_samples": 1, "vis_samples": 1, "augment.resolution": 16}
    trainer = {"steps": STEPS, "log_every": 1, "device": "cpu", "precision": "fp32", "compile": False}
    cfg = build(NiRNERunConfig, "tiny", {"tracking.enabled": False, "data": data, "trainer": trainer})
    with tempfile.TemporaryDirectory() as out:
        torch.manual_seed(cfg.trainer.seed)
        t = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), out)
        t.train()
    return [h["train/loss"] for h in t.history]


def test_tiny_nirne_run_follows_the_stored_loss_curve():
    stored = json.loads(BASELINE.read_text())
    got = curve()
    assert len(got) == len(stored["train/loss"]) == STEPS
    assert got == pytest.approx(stored["train/loss"], rel=TOLERANCE), (
        "the loss curve moved; if the change means to, regenerate it: see this module's docstring"
    )


def test_the_fixture_is_a_shard_set_the_readers_accept():
    index = json.loads((FIXTURE / "shards.json").read_text())
    views = index["sets"]["views"]
    assert (views["train"]["samples"], views["val"]["samples"]) == (3, 1)
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*")) < 64_000
    for shard in views["train"]["shards"] + views["val"]["shards"]:
        assert io.sha256_file(FIXTURE / shard["path"]) == shard["sha256"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", action="store_true", help="rewrite the shard set first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fixture:
        write_fixture(FIXTURE)
    BASELINE.parent.mkdir(exist_ok=True)
    io.write_json(BASELINE, {"run": "tests/training/test_baseline.py: curve()", "steps": STEPS, "train/loss": curve()})
    print(f"wrote {BASELINE.relative_to(ROOT)}")
