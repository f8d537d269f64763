"""NiRNE speed: inference latency (one image) and training throughput (the trainer's own step: bf16
autocast, torch.compile, fused AdamW, EMA, clipping) at 512^2, against a single-stream U-Net of the
same width (the preset without the clean stream and the noise). bf16 on CUDA, fp32 on CPU.

`--backbone sd`: the same for NiRNE on an SD-2-sized diffusers backbone with random weights (the
U-Net of SD 2.x, its ControlNet copy, the VAE; preset `sd`), against that U-Net fine-tuned alone
(E2E-FT's single stream); the peak GPU memory of training shows the preset's batch fits.

Training FLOPs are counted with torch's FlopCounterMode on one eager forward + backward; achieved
FLOP/s = FLOPs per step x steps/s, compared with the datasheet dense bf16 peak and with a measured
8192^3 bf16 matmul.

    python bench/nirne.py [--backbone unet|sd] [--preset base] [--resolution 512] [--batch 16] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hi3dgen.config import build  # noqa: E402
from hi3dgen.data.toy import toy_batch  # noqa: E402
from hi3dgen.models.backbones import build_nirne  # noqa: E402
from hi3dgen.training.nirne import NiRNERunConfig, NiRNETrainer  # noqa: E402

DATASHEET_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense, SXM
# SD 2.x's U-Net and VAE (stabilityai/stable-diffusion-2-1-base's config.json; 64^2 latents at 512^2)
SD2_UNET = {
    "sample_size": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
}
SD2_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
}


def timed_ms(fn, iters: int, warmup: int, device: torch.device) -> float:
    """Median milliseconds of `fn()` (CUDA events on the GPU, wall clock on the CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def matmul_tflops(device: torch.device) -> float:
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    ms = timed_ms(lambda: a @ b, 10, 3, device)
    return 2 * 8192**3 / ms / 1e9


def inference(spec: dict, res: int, device: torch.device, iters: int) -> dict:
    """Latency of NiRNE on one image through the library's `Predictor`: eager, and (on the GPU)
    replayed from its CUDA graph; and of `predict_image` (host image in, host normals out)."""
    import numpy as np

    from hi3dgen.inference.predict import Predictor, predict_image

    cfg = build(NiRNERunConfig, spec["preset"], spec["overrides"])
    with device:  # initialized on the device: SD-sized random inits take minutes on the host
        model = build_nirne(cfg.model).eval()
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.rand(1, 3, res, res, device=device).contiguous(memory_format=fmt)
    eager, graphed = Predictor(model, graphs=False), Predictor(model)
    out = {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "eager_ms": timed_ms(lambda: eager(x), iters, 3, device),
    }
    if graphed.graphs:
        out["graph_ms"] = timed_ms(lambda: graphed(x), iters, 3, device)
    rgb = np.random.default_rng(0).random((res, res, 3), dtype=np.float32)
    out["predict_image_ms"] = timed_ms(lambda: predict_image(graphed, rgb), iters, 3, device)
    return out


class SameBatch:
    """A data stand-in: the same device batch every step (the bench times the model, not the loader)."""

    def __init__(self, batch: dict):
        self.batch, self.batch_size = batch, batch["image"].shape[0]

    def __next__(self):
        return self.batch

    def state_dict(self):
        return {}


def training(spec: dict, res: int, batch: int, device: torch.device, steps: int, compile: bool) -> dict:
    bench = {"trainer.compile": compile, "tracking.enabled": False}
    cfg = build(NiRNERunConfig, spec["preset"], spec["overrides"], bench)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    data = toy_batch(batch, res, "synthetic", torch.Generator(device=device).manual_seed(0), device)
    with tempfile.TemporaryDirectory() as tmp:
        with device:
            model = build_nirne(cfg.model)
        trainer = NiRNETrainer(cfg, model, SameBatch(data), tmp)
    batch_dev = trainer._to_device(data)
    with FlopCounterMode(display=False) as counter, trainer._autocast():
        loss, _ = trainer.compute_loss(trainer.model, batch_dev)
        loss.backward()
    flops = counter.get_total_flops()
    trainer.optimizer.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    for _ in range(3):  # compile and warm up
        trainer.train_step(data)
    if device.type == "cuda":
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    step_ms = timed_ms(lambda: trainer.train_step(data), steps, 2, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "step_ms": step_ms,
        "peak_mem_GiB": peak,
        "images_per_s": batch / step_ms * 1e3,
        "gflop_per_step": flops / 1e9,
        "tflops": flops / step_ms / 1e9,
        "warmup_s": warm_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", choices=("unet", "sd"), default="unet")
    p.add_argument("--preset", help="presets/nirne/<name>.yaml (default: base, or sd with --backbone sd)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--batch", type=int, help="train batch (default: the preset's)")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    preset = a.preset or ("sd" if a.backbone == "sd" else "base")
    batch = a.batch or build(NiRNERunConfig, preset).data.batch_size
    arch = {"model.sd.unet": SD2_UNET, "model.sd.vae": SD2_VAE} if a.backbone == "sd" else {}
    single = {**arch, "model.dual_stream": False, "model.noise.enabled": False}
    prefix = "sd-" if a.backbone == "sd" else ""
    models = {
        f"{prefix}nirne": {"preset": preset, "overrides": arch},
        f"{prefix}unet": {"preset": preset, "overrides": single},
    }
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "preset": preset,
        "resolution": a.resolution,
        "batch": batch,
        "models": {},
    }
    if device.type == "cuda":
        result["matmul_bf16_tflops"] = matmul_tflops(device)
    for name, spec in models.items():
        r = {"spec": spec, **inference(spec, a.resolution, device, a.iters)}
        if not a.skip_training:
            r.update(training(spec, a.resolution, batch, device, a.steps, not a.no_compile))
        result["models"][name] = r
        print(name, json.dumps(r), flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=2))
    peak = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in result["device"]), None)
    print(
        f"\n{result['device']}, torch {result['torch']}, {a.resolution}^2, train batch {batch}, "
        f"{'bf16' if device.type == 'cuda' else 'fp32'}"
    )
    if "matmul_bf16_tflops" in result:
        print(f"measured bf16 matmul: {result['matmul_bf16_tflops']:.0f} TFLOP/s; datasheet {peak}")
    print(
        "| model | params M | infer eager ms | infer graph ms | predict_image ms | train img/s | GFLOP/step | "
        "TFLOP/s | % datasheet | % matmul | train peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in result["models"].items():
        tf = r.get("tflops")
        pct = f"{100 * tf / peak:.0f}" if tf and peak else "-"
        pct_mm = f"{100 * tf / result['matmul_bf16_tflops']:.0f}" if tf and "matmul_bf16_tflops" in result else "-"
        print(
            f"| {name} | {r['params_M']:.1f} | {r['eager_ms']:.1f} | {r.get('graph_ms', float('nan')):.2f} | "
            f"{r['predict_image_ms']:.2f} | "
            f"{r.get('images_per_s', float('nan')):.1f} | {r.get('gflop_per_step', float('nan')):.0f} | "
            f"{tf if tf else float('nan'):.1f} | {pct} | {pct_mm} | {r.get('peak_mem_GiB', float('nan')):.1f} |"
        )


if __name__ == "__main__":
    main()
