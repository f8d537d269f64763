"""Does a shape VAE generalize, and does its decoder work from the posterior mean? Its SDF loss and
sign accuracy on train shapes beside val shapes of the same shard set (the validation's fixed
surface points and SDF samples), decoded from the posterior mean (what validation, NoRLD's targets
and reconstruction use) and from a posterior sample (what training decodes): a train figure far
ahead of the val one says the VAE learns the shapes it saw, not shapes; a sample far ahead of the
mean says the decoder learned to expect the posterior's noise.

    python bench/vae_split.py RUN/checkpoints/last.pt SHARDS [--shapes 64] [--device cpu]

Train shapes carry no ground-truth mesh in the shards, so this table has no F-score or Chamfer
(validation's figures are on val shapes only).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from hi3dgen.config import from_dict
from hi3dgen.data.shapes import ShapeDataConfig, val_samples
from hi3dgen.eval.shapes import sdf_scores
from hi3dgen.inference.checkpoints import load_vae


@torch.no_grad()
def split_figures(vae, data: ShapeDataConfig, split: str, sample: bool, device: str, batch: int = 8) -> dict:
    torch.manual_seed(0)  # the posterior samples
    samples = val_samples(data, split)
    sums = sum(sdf_scores(vae, samples[s : s + batch], data, device, sample) for s in range(0, len(samples), batch))
    return {"shapes": len(samples), "sdf_loss": sums[0] / len(samples), "sign_acc": sums[1] / len(samples)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("shards")
    p.add_argument("--shapes", type=int, default=64, help="shapes per split (the first ones)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    vae = load_vae(args.checkpoint, args.device)
    data = from_dict(ShapeDataConfig, state["config"]["data"])
    data = dataclasses.replace(data, shards=args.shards, val_shapes=args.shapes)
    print(f"{args.checkpoint} (step {state.get('step', '?')}) on {args.shards}\n")
    print("| split | shapes | latent | SDF loss | sign accuracy |\n|---|---:|---|---:|---:|")
    for split in ("train", "val"):
        for sample in (False, True):
            f = split_figures(vae, data, split, sample, args.device)
            latent = "posterior sample" if sample else "posterior mean"
            print(f"| {split} | {f['shapes']} | {latent} | {f['sdf_loss']:.4f} | {f['sign_acc']:.4f} |")


if __name__ == "__main__":
    main()
