"""Launching a per-worker training function: a plain process, or Ray Train's TorchTrainer (DDP)
when more than one worker is configured.

The training functions (`train_nirne`, `train_vae`, `train_norld`) are the same in both cases:
they call `init_distributed`, which joins the process group Ray Train set up, and the trainer
checkpoints and logs from rank 0 only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from hi3dgen import tracking
from hi3dgen.parallel import ExecutorConfig, init_ray

# Variables a Ray worker needs to log into the same MLflow run and find the project; NVLink
# multicast stays off in every process (multi-GPU hosts share their GPUs with others).
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_ID",
    "HI3DGEN_ROOT",
    "HI3DGEN_STATE",
    "NCCL_NVLS_ENABLE",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST",
    "NVSHMEM_DISABLE_NVLS",
)


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    workers: int = 1  # > 1: DDP over Ray Train workers
    use_gpu: bool = False  # one GPU per worker
    cpus_per_worker: float = 1.0
    ray_address: str | None = None  # a Ray cluster; None = a local Ray


def _worker_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.setdefault("MLFLOW_TRACKING_URI", tracking.tracking_uri())
    return {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1", **env}


def launch(train_fn: Callable, cfg, out_dir: str, launch_cfg: LaunchConfig) -> dict | None:
    """Run `train_fn(cfg, out_dir)` here, or on `launch_cfg.workers` Ray Train workers."""
    if launch_cfg.workers <= 1:
        return train_fn(cfg, out_dir)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    init_ray(ExecutorConfig(address=launch_cfg.ray_address), runtime_env={"env_vars": _worker_env()})

    def per_worker(_config: dict) -> None:
        import ray.train

        metrics = train_fn(cfg, out_dir)
        ray.train.report({k: float(v) for k, v in (metrics or {}).items()})

    trainer = TorchTrainer(
        per_worker,
        scaling_config=ScalingConfig(
            num_workers=launch_cfg.workers,
            use_gpu=launch_cfg.use_gpu,
            resources_per_worker={"CPU": launch_cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=os.path.basename(os.path.normpath(out_dir)), storage_path=str(tracking.state_dir() / "ray_results")
        ),
    )
    result = trainer.fit()
    return result.metrics
