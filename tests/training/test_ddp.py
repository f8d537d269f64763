"""Two CPU ranks (gloo): under torchrun, NiRNE and NoRLD with its regularizer keep the same weights
and EMA on both; in processes of our own (`torch.multiprocessing`, a file store, loopback), a run
preempted and resumed in a fresh process group ends rank by rank on the weights of an uninterrupted
one, gradient accumulation all-reduces once per step, and validation sharded over the ranks gives
one process's figures."""

import dataclasses
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from hi3dgen import checkpoint
from hi3dgen.config import build
from hi3dgen.inference.checkpoints import load_vae
from hi3dgen.models.norld import NoRLD
from hi3dgen.models.shape_vae import ShapeVAE
from hi3dgen.training import norld, vae
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer, build_data, build_model
from hi3dgen.training.trainer import init_distributed
from tests.training.regression import regression

NIRNE = """
from hi3dgen.config import build
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer, build_model, build_data
cfg = build(NiRNERunConfig, "tiny", {
    "data": {"toy_train": 16, "toy_size": 24, "batch_size": 2, "val_samples": 4, "augment.resolution": 16},
    "trainer": {"steps": 4, "log_every": 2, "ckpt_every": 2}, "tracking.enabled": False})
env = init_distributed()
t = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), sys.argv[1])
"""

NORLD = """
from hi3dgen.inference.checkpoints import load_vae
from hi3dgen.training.norld import NoRLDTrainer, build_model, run_config
from hi3dgen.training.vae import build_data
cfg = run_config("tiny", sys.argv[3], {
    "data": {"toy_train": 8, "batch_size": 2, "val_shapes": 1}, "reg": {"max_samples": 1, "views": 1},
    "stats_batches": 1, "trainer": {"steps": 4, "log_every": 2, "ckpt_every": 2}, "tracking.enabled": False})
env = init_distributed()
vae = load_vae(cfg.vae)
t = NoRLDTrainer(cfg, build_model(cfg, vae, "cpu"), vae, build_data(cfg.data, cfg.trainer.seed), sys.argv[1])
"""

WORKER = """
import sys, torch
torch.set_num_threads(1)
from hi3dgen.training.trainer import init_distributed
{setup}
t.train()
torch.save({"world": env.world_size, "model": t.model.state_dict(), "ema": t.ema.shadow, "consumed": t.data.consumed},
           f"{sys.argv[2]}/rank{env.rank}.pt")
"""


def _vae(tmp_path) -> str:
    """An untrained tiny shape VAE as `RUN/model.pt` holds one: its meshes are blobs, but meshes."""
    cfg = build(vae.VAERunConfig, "tiny")
    torch.manual_seed(0)
    path = tmp_path / "vae.pt"
    state = {"kind": "shape_vae", "config": dataclasses.asdict(cfg), "model": ShapeVAE(cfg.model).state_dict()}
    checkpoint.save(path, state)
    return str(path)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _ranks(folder, world: int = 2) -> list[dict]:
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.mark.parametrize("model", ["nirne", "norld"])
def test_two_ranks_stay_in_sync(tmp_path, model):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("{setup}", NIRNE if model == "nirne" else NORLD))
    extra = [_vae(tmp_path)] if model == "norld" else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            str(tmp_path / "run"),
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = _ranks(tmp_path)
    assert a["world"] == b["world"] == 2
    assert _equal(a["model"], b["model"]) and _equal(a["ema"], b["ema"])
    assert a["consumed"] == b["consumed"] == 8
    steps = checkpoint.step_files(tmp_path / "run/checkpoints")
    assert sorted(steps) == [2, 4] and (tmp_path / "run/checkpoints/last.pt").samefile(steps[4])


# ---- processes of our own ---------------------------------------------------------------------
def spawn(tmp_path, fn, *args, world: int = 2) -> None:
    """`fn(*args)` on `world` new processes, in a new gloo process group. They are forked (spawned
    ones would spend seconds importing torch again); each runs torch on one thread, as DataLoader's
    forked workers do."""
    import torch._dynamo  # noqa: F401  (torch's optimizers load it on first use: here once, not in each rank)

    store = tmp_path / f"store-{len(list(tmp_path.glob('store-*')))}"  # a file store: no port to pick
    torch.multiprocessing.start_processes(_rank, args=(world, str(store), fn, args), nprocs=world, start_method="fork")


def _rank(rank: int, world: int, store: str, fn, args) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # the ranks talk over loopback only
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def _nirne_cfg(steps: int = 4, data: dict | None = None, **trainer):
    small = {"toy_train": 16, "toy_size": 24, "batch_size": 2, "val_samples": 6, "augment.resolution": 16}
    return build(
        NiRNERunConfig,
        "tiny",
        {"tracking.enabled": False, "data": {**small, **(data or {})}},
        {"trainer": {"steps": steps, "log_every": 1, **trainer}},
    )


def _train_nirne(runs: list[tuple[str, str, int | None]]) -> None:
    """Each (run dir, result dir, stop_at) in turn: a NiRNE run of 2 micro-batches a step, validated
    and checkpointed every 2 steps; each rank saves its weights, EMA, RNG state and loss curve."""
    for out, result, stop_at in runs:
        cfg = _nirne_cfg(grad_accum=2, val_every=2, ckpt_every=2)
        torch.manual_seed(cfg.trainer.seed)
        t = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), out)
        t.train(stop_at=stop_at)
        os.makedirs(result, exist_ok=True)
        torch.save(
            {
                "model": t.model.state_dict(),
                "ema": t.ema.shadow,
                "rng": torch.get_rng_state(),
                "losses": [h["train/loss"] for h in t.history],
                "step": t.step,
            },
            f"{result}/rank{t.env.rank}.pt",
        )


@pytest.mark.slow
def test_two_ranks_preempted_and_resumed_end_on_the_same_weights(tmp_path):
    full, cut, resumed = (str(tmp_path / name) for name in ("full", "cut", "resumed"))
    spawn(tmp_path, _train_nirne, [(f"{full}/run", full, None), (f"{cut}/run", cut, 3)])
    spawn(tmp_path, _train_nirne, [(f"{cut}/run", resumed, None)])  # fresh processes and process group
    full, cut, resumed = (_ranks(tmp_path / name) for name in ("full", "cut", "resumed"))
    assert [r["step"] for r in cut] == [3, 3] and [r["step"] for r in resumed] == [4, 4]
    for rank in range(2):
        assert _equal(full[rank]["model"], resumed[rank]["model"]), rank
        assert _equal(full[rank]["ema"], resumed[rank]["ema"]), rank
        assert torch.equal(full[rank]["rng"], resumed[rank]["rng"]), rank
        assert cut[rank]["losses"] + resumed[rank]["losses"] == full[rank]["losses"]
    assert _equal(full[0]["model"], full[1]["model"])
    assert not torch.equal(full[0]["rng"], full[1]["rng"])  # the ranks draw different noise
    cfg = _nirne_cfg()
    alone = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), tmp_path / "cut/run")
    with pytest.raises(ValueError, match=r"written by 2 rank\(s\), this run has 1: resume with as many"):
        alone.train()


def _accumulate(out: str, result: str) -> None:
    """Regression, 2 micro-batches of 2 a step on each rank; counts DDP's all-reduces."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    t = regression(out, 2, grad_accum=2)
    reduces = []

    def counting(state, bucket):
        reduces.append(bucket.index())
        return allreduce_hook(state, bucket)

    t.ddp.register_comm_hook(None, counting)
    t.train()
    torch.save({"model": t.model.state_dict(), "reduces": len(reduces)}, f"{result}/rank{t.env.rank}.pt")


@pytest.mark.slow
def test_two_ranks_accumulate_locally_and_reduce_once_a_step(tmp_path):
    one = regression(tmp_path / "one", 8)  # the same 8 samples a step in one process, one batch
    one.train()
    spawn(tmp_path, _accumulate, str(tmp_path / "run"), str(tmp_path))
    for rank in _ranks(tmp_path):
        assert rank["reduces"] == 3  # 3 steps of one bucket: none on the first micro-batch of a step
        for k, v in one.model.state_dict().items():
            assert torch.allclose(rank["model"][k], v, atol=1e-6), k


def _evaluate(result: str, vae_path: str, whole: bool = False) -> None:
    """Val figures of NiRNE (6 views), the shape VAE and NoRLD (3 shapes each), saved by each rank:
    in batches of 2 (rank 0 takes 1 of 3 NiRNE batches, 1 of 2 shape batches), or NiRNE and VAE in one
    batch of all (`whole`: what one process evaluated before validation was sharded; NoRLD's batches
    set its noise, so they stay)."""
    figures = {}
    cfg = _nirne_cfg(data={"augment.resolution": 24, "batch_size": 6 if whole else 2})
    torch.manual_seed(0)
    t = NiRNETrainer(cfg, build_model(cfg), build_data(cfg), f"{result}/eval-nirne")
    figures["nirne"] = _figures(t)
    figures["share"] = t.val_batches(list("abcdef"), cfg.data.batch_size)

    shapes = {"toy_train": 8, "val_shapes": 3, "batch_size": 3 if whole else 2}
    cfg = build(vae.VAERunConfig, "tiny", {"tracking.enabled": False, "data": shapes})
    t = vae.VAETrainer(cfg, load_vae(vae_path), vae.build_data(cfg.data, 0), f"{result}/eval-vae")
    figures["vae"] = _figures(t)

    shapes = {"toy_train": 8, "val_shapes": 3, "batch_size": 2}
    cfg = norld.run_config("tiny", vae_path, {"tracking.enabled": False, "data": shapes, "sample.steps": 2})
    shape_vae = load_vae(vae_path)
    torch.manual_seed(0)  # not `build_model`: the figures compared here do not need measured latent statistics
    t = norld.NoRLDTrainer(cfg, NoRLD(cfg.model), shape_vae, vae.build_data(cfg.data, 0), f"{result}/eval-norld")
    figures["norld"] = _figures(t)
    torch.save(figures, f"{result}/rank{init_distributed().rank}.pt")


def _figures(t) -> dict[str, float]:
    t.model.eval()
    with torch.no_grad():
        return t.evaluate()


@pytest.mark.slow
def test_validation_sharded_over_two_ranks_gives_one_process_figures(tmp_path):
    vae_path = _vae(tmp_path)
    (tmp_path / "one").mkdir()
    _evaluate(str(tmp_path / "one"), vae_path, whole=True)
    spawn(tmp_path, _evaluate, str(tmp_path), vae_path)
    one = torch.load(tmp_path / "one/rank0.pt", weights_only=False)
    assert set(one["nirne"]) >= {"NE", "SNE", "median"} and set(one["vae"]) >= {"chamfer", "sdf_loss"}
    assert set(one["norld"]) >= {"chamfer", "NE", "SNE", "empty"} and one["vae"]["empty"] < 1
    ranks = _ranks(tmp_path)
    assert one.pop("share") == [(0, list("abcdef"))]
    assert [rank.pop("share") for rank in ranks] == [[(0, ["a", "b"])], [(1, ["c", "d"]), (2, ["e", "f"])]]
    for rank in ranks:
        for model, figures in one.items():
            assert rank[model].keys() == figures.keys(), model
            for k, v in figures.items():
                got = rank[model][k]
                assert math.isnan(got) if math.isnan(v) else got == pytest.approx(v, rel=1e-6), (model, k)
