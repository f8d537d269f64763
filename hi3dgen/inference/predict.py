"""NiRNE inference on image files: any size and aspect, 16-bit normal PNG (the view-sample encoding,
via `hi3dgen.data.codec`) plus an 8-bit preview. One unreadable image is reported, not fatal; two
inputs never write one file, and a file that is there already is not overwritten unless asked.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hi3dgen import io
from hi3dgen import tracking as project_tracking
from hi3dgen.data import codec
from hi3dgen.images import MAX_PIXELS, read_image
from hi3dgen.models.nirne import NiRNEBase


class Predictor:
    """NiRNE's normals (either backbone) of (1, 3, H, W) images in [0, 1]: eager on the CPU; on CUDA (bf16) replayed
    from a CUDA graph captured once per image size, which takes a third of the eager time at 512²
    (BENCHMARKS.md, NiRNE). The last `MAX_GRAPHS` sizes keep their graph (each holds its buffers)."""

    MAX_GRAPHS = 8

    def __init__(self, model: NiRNEBase, graphs: bool = True):
        self.model = model
        self.device = next(model.parameters()).device
        self.graphs = graphs and self.device.type == "cuda"
        self._captured: collections.OrderedDict = collections.OrderedDict()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        cuda = self.device.type == "cuda"  # cached casts do not survive graph capture
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda, cache_enabled=False):
            return self.model.predict(x)

    def _capture(self, x: torch.Tensor):
        static = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN picks its kernels)
            for _ in range(3):
                self._run(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._run(static)
        return graph, static, out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.graphs:
            return self._run(x)
        key = tuple(x.shape)
        if key not in self._captured:
            if len(self._captured) >= self.MAX_GRAPHS:
                self._captured.popitem(last=False)
            self._captured[key] = self._capture(x)
        self._captured.move_to_end(key)
        graph, static, out = self._captured[key]
        static.copy_(x)
        graph.replay()
        return out.clone()


def predict_image(predictor: Predictor, rgb: np.ndarray, max_side: int | None = 1024) -> np.ndarray:
    """(H, W, 3) image in [0, 1] -> (H, W, 3) unit normals. Images larger than `max_side` run
    downscaled and the normals are upsampled back."""
    x = torch.from_numpy(rgb.transpose(2, 0, 1)).to(predictor.device)[None]
    h, w = x.shape[-2:]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        x = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
    n = predictor(x.contiguous())
    if n.shape[-2:] != (h, w):
        n = F.normalize(F.interpolate(n, size=(h, w), mode="bilinear", align_corners=False), dim=1)
    return n[0].float().permute(1, 2, 0).cpu().numpy()


def output_names(paths: list[Path]) -> list[str]:
    """One output name per input: its path relative to the inputs' common folder, without its
    suffix (`a/x.png b/x.png` -> `a/x`, `b/x`), or with it where inputs of one folder share a stem
    (`x.png x.jpg` -> `x.png`, `x.jpg`)."""
    if not paths:
        return []
    common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    rel = [Path(os.path.relpath(os.path.abspath(p), common)) for p in paths]
    stems = [r.with_suffix("").as_posix() for r in rel]
    count = collections.Counter(r.with_suffix("").as_posix() for r in set(rel))  # a file given twice is one
    return [r.as_posix() if count[stem] > 1 else stem for r, stem in zip(rel, stems)]


def claim_outputs(targets: list[list[Path]], overwrite: bool = False) -> list[str | None]:
    """Per input, why it may not write its output files (None: it may): an earlier input writes
    one of them (the same image given twice), or one is there already and `overwrite` is off."""
    owner: dict[Path, int] = {}
    problems = []
    for i, files in enumerate(targets):
        taken = [f for f in files if f in owner]
        there = [f for f in files if f.exists()]
        if taken:
            problems.append(f"{taken[0]} is the output of input {owner[taken[0]] + 1} already (given twice?)")
        elif there and not overwrite:
            problems.append(f"{there[0]} exists; not overwritten (remove it, give another --out, or --overwrite)")
        else:
            problems.append(None)
        owner.update({f: i for f in files if f not in owner})
    return problems


def predict_files(
    model: NiRNEBase,
    paths: list[str],
    out_dir: str | os.PathLike,
    max_side: int | None = 1024,
    max_pixels: int = MAX_PIXELS,
    overwrite: bool = False,
) -> list[tuple[str, str, str | None]]:
    """Writes OUT/<name>.normal.png (16-bit, background 0 where alpha is 0) and OUT/<name>.preview.png
    (names: `output_names`); returns (input, normal map, error or None) per input."""
    out_dir = Path(out_dir)
    paths = [Path(p) for p in paths]
    predictor = Predictor(model)
    targets = [[out_dir / f"{n}.normal.png", out_dir / f"{n}.preview.png"] for n in output_names(paths)]
    results = []
    for path, (normal_png, preview_png), problem in zip(paths, targets, claim_outputs(targets, overwrite)):
        if problem:
            results.append((str(path), str(normal_png), problem))
            continue
        try:
            rgb, fg = read_image(path, max_pixels)
            normal = predict_image(predictor, rgb, max_side)
            io.write_bytes(normal_png, codec.encode_normal(normal, fg))
            io.write_bytes(preview_png, codec.encode_rgb(project_tracking.normal_to_rgb(normal, fg)))
            results.append((str(path), str(normal_png), None))
        except (OSError, ValueError) as exc:
            results.append((str(path), str(normal_png), str(exc)))
    return results
