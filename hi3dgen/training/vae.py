"""Shape VAE training on the shape shards, and the shape batches NoRLD training reads too.

`train_vae(cfg, out)` runs the shared trainer core (`hi3dgen.training.trainer`): checkpoints at
`RUN/checkpoints/last.pt`, exact resume, MLflow, EMA. Validation reconstructs val shapes, extracts
their meshes and reports Chamfer, F-score (1% of the object size) and normal consistency against
the ground-truth surface samples; visualization renders the reconstruction at the shape's
ground-truth views beside the ground truth.

Data: shape shards (`hi3dgen.data.webds.shape_dataset`), or `toy`: analytic boxes, spheres and
cylinders in the same sample format, for machines without shards (and tests).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from hi3dgen import tracking as project_tracking
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.geometry.metrics import mesh_metrics
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig, vae_loss
from hi3dgen.models.shape_vae import preset as model_preset
from hi3dgen.render.cameras import Camera, orbit_cameras
from hi3dgen.render.diff_normals import render_normals
from hi3dgen.training.data import Batches, ListStream
from hi3dgen.training.trainer import Trainer, TrainerConfig, init_distributed
from hi3dgen.training.tracking import TrackingConfig

TOY = "toy"
SURFACE_METRICS = ("chamfer", "fscore", "normal_consistency")


@dataclasses.dataclass
class ShapeDataConfig:
    shards: str = TOY  # a shard dir, or `toy` for analytic shapes
    batch_size: int = 8
    workers: int = 0  # threads that prepare samples
    surface_points: int = 4096  # encoder input per shape (the VAE's num_points)
    sdf_points: int = 4096  # SDF supervision samples per shape and step
    views: int = 0  # ground-truth views per sample in a batch (NoRLD: condition + regularizer)
    in_memory: bool = False  # decode a shard set once and keep it (small sets: no per-step decoding)
    view_size: int = 0  # their resolution (0: as stored)
    cond_size: int = 0  # > 0: also the first of them at this resolution as `cond` (NoRLD's condition)
    val_shapes: int = 8  # val shapes evaluated during training
    vis_shapes: int = 2
    toy_train: int = 64
    toy_views: int = 4
    toy_size: int = 64  # toy views' resolution


# ---- data ------------------------------------------------------------------------------------
def _box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def _cylinder_sdf(p: np.ndarray, radius: float, half_height: float) -> np.ndarray:
    d = np.stack([np.linalg.norm(p[:, [0, 2]], axis=-1) - radius, np.abs(p[:, 1]) - half_height], -1)
    return np.minimum(d.max(-1), 0) + np.linalg.norm(np.maximum(d, 0), axis=-1)


def toy_shape(index: int, seed: int, cfg: ShapeDataConfig, surface_points: int = 2048,
              sdf_points: int = 4096) -> dict:
    """One analytic shape (box, sphere or capped cylinder, longest side 1) as a decoded shape
    sample: surface (N, 6), exact sdf (M, 4), normals (V, 3, H, W), masks, cameras."""
    import trimesh

    from hi3dgen.render.embree import EmbreeBackend

    rng = np.random.default_rng([seed, index])
    kind = index % 3
    if kind == 0:
        half = np.sort(rng.uniform(0.15, 0.5, 3))[[1, 2, 0]]
        half[1] = 0.5
        mesh, sdf = trimesh.creation.box(2 * half), lambda p: _box_sdf(p, half)
    elif kind == 1:
        mesh, sdf = trimesh.creation.icosphere(3, radius=0.5), lambda p: np.linalg.norm(p, axis=-1) - 0.5
    else:
        r, h = (0.5, rng.uniform(0.1, 0.5)) if rng.random() < 0.5 else (rng.uniform(0.1, 0.5), 0.5)
        mesh = trimesh.creation.cylinder(r, 2 * h, sections=48)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))  # axis z -> y
        sdf = lambda p: _cylinder_sdf(p, r, h)  # noqa: E731
    pts, face = trimesh.sample.sample_surface(mesh, surface_points, seed=rng)
    near = trimesh.sample.sample_surface(mesh, sdf_points // 2, seed=rng)[0]
    near = near + rng.normal(0, rng.choice([0.005, 0.05], (len(near), 1)), near.shape)
    queries = np.concatenate([near, rng.uniform(-0.55, 0.55, (sdf_points - len(near), 3))])
    cams = orbit_cameras(cfg.toy_views, cfg.toy_size, seed=int(rng.integers(1 << 31)))
    views = EmbreeBackend().render(mesh, cams, rgb=False)
    return {
        "key": f"toy_{seed}_{index:05d}",
        "asset_id": f"toy_{seed}_{index:05d}",
        "surface": np.concatenate([pts, mesh.face_normals[face]], 1).astype(np.float32),
        "sdf": np.concatenate([queries, sdf(queries)[:, None]], 1).astype(np.float32),
        "normals": np.stack([v.normal.transpose(2, 0, 1) for v in views]).astype(np.float32),
        "masks": np.stack([v.mask for v in views]),
        "cameras": {"K": np.stack([c.K for c in cams]).astype(np.float32),
                    "c2w": np.stack([c.c2w for c in cams]).astype(np.float32),
                    "width": cfg.toy_size, "height": cfg.toy_size},
    }


def toy_shapes(cfg: ShapeDataConfig, split: str) -> list[dict]:
    n = cfg.toy_train if split == "train" else cfg.val_shapes
    seed = {"train": 0, "val": 1_000_000}[split]
    return [toy_shape(i, seed, cfg) for i in range(n)]


def train_stream(cfg: ShapeDataConfig, seed: int):
    """start -> this rank's endless, shuffled stream of train shapes after `start` consumed ones
    (the contract of `Batches`). Opened once here so a bad shard dir fails before training."""
    from hi3dgen.data.webds import shape_dataset

    if cfg.shards == TOY or cfg.in_memory:
        samples = toy_shapes(cfg, "train") if cfg.shards == TOY else list(shape_dataset(cfg.shards, split="train"))
        return lambda start: ListStream(samples, seed, start, cfg.batch_size)

    def open_stream(start: int):
        return shape_dataset(cfg.shards, split="train", shuffle=True, seed=seed, resampled=True, start=start,
                             batch_size=cfg.batch_size)

    open_stream(0)
    return open_stream


def _subset(rng: np.random.Generator | None, n: int, k: int) -> np.ndarray:
    if rng is None:
        return np.arange(k) % n
    return rng.choice(n, k, replace=n < k)


def cameras_of(sample: dict) -> list[Camera]:
    """A decoded sample's (or batch row's) cameras: K (V, 3, 3) and c2w (V, 4, 4)."""
    cams = sample["cameras"] if "cameras" in sample else sample
    K, c2w = np.asarray(cams["K"], np.float64), np.asarray(cams["c2w"], np.float64)
    h, w = int(cams["height"]), int(cams["width"])
    return [Camera(K[i], c2w[i], w, h) for i in range(len(K))]


def resample_views(sample: dict, pick: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Views `pick` of a sample at `size` pixels on the longer side, sampled at the new pixel
    centres (nearest: normals stay exact unit vectors), with K scaled to match."""
    h, w = int(sample["cameras"]["height"]), int(sample["cameras"]["width"])
    s = (size or max(h, w)) / max(h, w)
    rows = np.minimum((np.arange(round(h * s)) + 0.5) / s, h - 1).astype(int)
    cols = np.minimum((np.arange(round(w * s)) + 0.5) / s, w - 1).astype(int)
    K = np.asarray(sample["cameras"]["K"], np.float32)[pick].copy()
    K[:, :2] *= s
    return {
        "normals": np.asarray(sample["normals"], np.float32)[pick][:, :, rows][:, :, :, cols],
        "masks": np.asarray(sample["masks"], bool)[pick][:, rows][:, :, cols],
        "K": K,
        "c2w": np.asarray(sample["cameras"]["c2w"], np.float32)[pick],
    }


def prepare_shape(sample: dict, cfg: ShapeDataConfig, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Random subsets of the surface and SDF samples and, with `cfg.views`, that many random
    ground-truth views (normals (V, 3, S, S), masks, K, c2w) at `view_size`, the first of them also
    as the condition `cond` (3, C, C) at `cond_size`. rng None: the first ones (validation)."""
    surface, sdf = sample["surface"], sample["sdf"]
    out = {
        "surface": surface[_subset(rng, len(surface), cfg.surface_points)],
        "sdf": sdf[_subset(rng, len(sdf), cfg.sdf_points)],
    }
    if cfg.views:
        n = len(sample["normals"])
        pick = _subset(rng, n, cfg.views) if rng is not None else np.arange(cfg.views) % n
        out.update(resample_views(sample, pick, cfg.view_size))
        if cfg.cond_size:
            out["cond"] = resample_views(sample, pick[:1], cfg.cond_size)["normals"][0]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def batch_cameras(batch: dict, i: int) -> list[Camera]:
    """The cameras of row i of a batch made by `prepare_shape`."""
    h, w = batch["masks"].shape[-2:]
    return cameras_of({"K": batch["K"][i].cpu().numpy(), "c2w": batch["c2w"][i].cpu().numpy(), "height": h, "width": w})


def build_data(cfg: ShapeDataConfig, seed: int) -> Batches:
    """The resumable train batch stream (the trainer core's `Batches` over `prepare_shape`)."""
    return Batches(train_stream(cfg, seed), cfg.batch_size, functools.partial(prepare_shape, cfg=cfg), seed=seed,
                   workers=cfg.workers)


def val_samples(cfg: ShapeDataConfig, split: str = "val") -> list[dict]:
    """The first `val_shapes` decoded samples of a split, in a fixed order."""
    if cfg.shards == TOY:
        return toy_shapes(cfg, split)[: cfg.val_shapes]
    from hi3dgen.data.webds import shape_dataset

    out = []
    for sample in shape_dataset(cfg.shards, split=split):
        out.append(sample)
        if len(out) >= cfg.val_shapes:
            break
    return out


# ---- evaluation and pictures -------------------------------------------------------------------
def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key means; `empty` is the share of shapes that produced no surface (their Chamfer is
    left out of the mean, their F-score and consistency count as 0)."""
    done = [r for r in rows if np.isfinite(r["chamfer"])]
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "chamfer"}
    out["chamfer"] = float(np.mean([r["chamfer"] for r in done])) if done else float("nan")
    out["empty"] = 1.0 - len(done) / len(rows)
    return out


def normals_grid(rendered: list, samples: list[dict], views: int) -> np.ndarray:
    """Rows of ground truth | rendered normal maps for each sample's first `views` views."""
    tiles = []
    for maps, sample in zip(rendered, samples):
        for v in range(views):
            gt = np.asarray(sample["normals"][v]).transpose(1, 2, 0)
            mask = np.asarray(sample["masks"][v], bool)
            tiles.append(project_tracking.normal_to_rgb(gt, mask))
            if maps is None:
                tiles.append(np.zeros_like(tiles[-1]))
            else:
                tiles.append(project_tracking.normal_to_rgb(maps.normal[v].detach().cpu().numpy(),
                                                            maps.mask[v].cpu().numpy()))
    return project_tracking.grid(tiles, cols=2 * views)


def render_meshes(meshes: list, samples: list[dict], views: int) -> list:
    """Differentiable-renderer normal maps of each mesh at its sample's first `views` cameras."""
    out = []
    for mesh, sample in zip(meshes, samples):
        cams = cameras_of(sample)[:views]
        out.append(None if mesh is None else render_normals(mesh.vertices.detach(), mesh.faces, cams))
    return out


# ---- trainer -----------------------------------------------------------------------------------
@dataclasses.dataclass
class VAERunConfig:
    preset: str = "base"
    model: ShapeVAEConfig = dataclasses.field(default_factory=ShapeVAEConfig)
    data: ShapeDataConfig = dataclasses.field(default_factory=ShapeDataConfig)
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    vis_views: int = 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def preset_config(name: str, **fields) -> VAERunConfig:
    """`tiny`: minutes on a CPU (toy-sized model, 32^3 extraction); `small`: minutes on a GPU;
    `base`: a GPU run."""
    cfg = VAERunConfig(preset=name, model=model_preset(name), **fields)
    if name == "tiny":
        cfg.data = dataclasses.replace(cfg.data, batch_size=8, sdf_points=1024, val_shapes=4, toy_train=24, toy_size=32)
        cfg.extract = ExtractConfig(resolution=32)
        cfg.trainer = dataclasses.replace(cfg.trainer, steps=300, ema_decay=0.99, log_every=10, ckpt_every=100,
                                          optim=dataclasses.replace(cfg.trainer.optim, lr=1e-3, warmup_steps=20))
    elif name == "small":
        cfg.data = dataclasses.replace(cfg.data, batch_size=32, sdf_points=4096, workers=4)
        cfg.extract = ExtractConfig(resolution=65, coarse=17)
        cfg.trainer = dataclasses.replace(cfg.trainer, steps=2000, log_every=50, ckpt_every=500,
                                          optim=dataclasses.replace(cfg.trainer.optim, lr=5e-4, warmup_steps=50))
    else:
        cfg.data = dataclasses.replace(cfg.data, batch_size=32, sdf_points=8192, workers=8)
        cfg.extract = ExtractConfig(resolution=129, coarse=33)
        cfg.trainer = dataclasses.replace(cfg.trainer, steps=50000, log_every=50, val_every=2000, vis_every=2000,
                                          ckpt_every=1000, optim=dataclasses.replace(cfg.trainer.optim, lr=1e-4))
    cfg.data.surface_points = cfg.model.num_points
    return cfg


class VAETrainer(Trainer):
    kind = "shape_vae"

    def __init__(self, cfg: VAERunConfig, model: ShapeVAE, data, out_dir):
        self.run_cfg = cfg
        super().__init__(cfg.trainer, model, data, out_dir, run_config=cfg.to_dict(), tracking=cfg.tracking)
        self._val: list[dict] | None = None

    def compute_loss(self, model, batch):
        surface, sdf = batch["surface"], batch["sdf"]
        pred, post = model(surface, torch.cat([sdf[..., :3], surface[..., :3]], dim=1))
        return vae_loss(self.run_cfg.model, pred.float(), post, sdf)

    def _val_samples(self) -> list[dict]:
        if self._val is None:
            self._val = val_samples(self.run_cfg.data)
        return self._val

    def _reconstruct(self, samples: list[dict]) -> list:
        prepared = [prepare_shape(s, self.run_cfg.data, None) for s in samples]
        surface = torch.from_numpy(np.stack([p["surface"] for p in prepared])).to(self.device)
        with self._autocast():
            return self.model.extract_meshes(self.model.encode(surface).mean, self.run_cfg.extract)

    def evaluate(self) -> dict[str, float]:
        samples = self._val_samples()
        meshes = self._reconstruct(samples)
        rows = [mesh_metrics(None if m is None else m.to_trimesh(), s["surface"]) for m, s in zip(meshes, samples)]
        prepared = [prepare_shape(s, self.run_cfg.data, None) for s in samples]
        surface, sdf = (torch.from_numpy(np.stack([p[k] for p in prepared])).to(self.device) for k in ("surface", "sdf"))
        pred, post = self.model(surface, torch.cat([sdf[..., :3], surface[..., :3]], dim=1), sample=False)
        _, parts = vae_loss(self.run_cfg.model, pred.float(), post, sdf)
        return {**mean_metrics(rows), "sdf_loss": float(parts["sdf_loss"]), "sign_acc": float(parts["sign_acc"])}

    def visualize(self) -> dict[str, np.ndarray]:
        samples = self._val_samples()[: self.run_cfg.data.vis_shapes]
        views = min(self.run_cfg.vis_views, len(samples[0]["normals"]))
        return {"vae_normals": normals_grid(render_meshes(self._reconstruct(samples), samples, views), samples, views)}


def train_vae(cfg: VAERunConfig, out_dir: str, stop_at: int | None = None) -> dict[str, float]:
    """The per-worker training function (plain process, torchrun or Ray Train worker)."""
    init_distributed(cfg.trainer.device)
    torch.manual_seed(cfg.trainer.seed)  # the same initial weights for the same seed
    trainer = VAETrainer(cfg, ShapeVAE(cfg.model), build_data(cfg.data, cfg.trainer.seed), out_dir)
    return trainer.train(stop_at=stop_at)
