"""`hi3dgen train nirne | vae | norld`: each parses its run config with tyro (`hi3dgen.config`).
`--preset NAME` (presets/<model>/NAME.yaml) chooses the defaults; every field of the run config is
a flag by its dotted name (`--trainer.optim.warmup-steps 50`, `--model.width 64`), and the common
ones have short names too (`--data`, `--steps`, `--batch-size`, `--lr`, `--no-tracking`, `--stage`,
`--init`, `--no-noise`, `--reg-weight` ...; `--help` lists them all)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Annotated, Generic, TypeVar

import tyro

from hi3dgen import config

C = TypeVar("C")

# model -> (help, module, run config class, training function)
MODELS = {
    "nirne": ("train NiRNE (stage 1 on real, stage 2 on synthetic)", "nirne", "NiRNERunConfig", "train_nirne"),
    "vae": ("train the shape VAE on shape shards", "vae", "VAERunConfig", "train_vae"),
    "norld": ("train NoRLD (flow matching + online normal regularizer)", "norld", "NoRLDRunConfig", "train_norld"),
}


@dataclasses.dataclass(frozen=True)
class Train(Generic[C]):
    """Train a model; a run resumes from OUT/checkpoints/last.pt."""

    out: str  # the run dir (checkpoints/, model.pt)
    run: Annotated[C, tyro.conf.arg(name="")]


def parse(model: str, argv: list[str], prog: str = "hi3dgen train") -> Train:
    """The command's config: the preset `--preset` names, then the flags; `--out` and `--data` required."""
    module = importlib.import_module(f"hi3dgen.training.{MODELS[model][1]}")
    cls = getattr(module, MODELS[model][2])
    run = config.build(cls, config.option(argv, "--preset", "base"))
    run = dataclasses.replace(run, data=dataclasses.replace(run.data, shards=tyro.MISSING))
    return config.parse(Train[cls], argv, prog, default=Train(out=tyro.MISSING, run=run))


def _run(model: str):
    def run(argv: list[str], prog: str) -> int:
        cmd = parse(model, argv, prog)
        if cmd.run.tracking.enabled:
            from hi3dgen import tracking

            tracking.preflight()  # a tracked run checks its MLflow store before any work
        module = importlib.import_module(f"hi3dgen.training.{MODELS[model][1]}")
        metrics = getattr(module, MODELS[model][3])(cmd.run, cmd.out)
        print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        return 0

    return run


def register(subparsers) -> None:
    for model, (text, *_) in MODELS.items():
        config.add_command(subparsers, model, text, _run(model), group="train")
