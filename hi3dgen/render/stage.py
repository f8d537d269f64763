"""The render stage: every accepted asset of an input stage becomes a folder of view samples,
`OUT/views/<asset_id>/<view:03d>.<member>` with the members of DESIGN.md's view sample, written as a
whole (atomically) so a killed run never leaves a folder that a rerun would trust."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from hi3dgen import io
from hi3dgen import manifest as mf
from hi3dgen.assets import mesh as am
from hi3dgen.data import codec
from hi3dgen.data.cameras import Camera
from hi3dgen.manifest import asset_seed
from hi3dgen.parallel import ExecutorConfig, run_stage
from hi3dgen.render import backend as rb
from hi3dgen.render.cameras import orbit_cameras

VIEWS_DIR = "views"
NVDIFFRAST_GPUS_PER_TASK = 0.125  # tasks share a GPU: rasterizing is quick, PNG encoding is not
MAX_RESOLUTION = 4096  # a view takes ~115 bytes a pixel to render and encode (embree, measured): ~2 GB at 4096²


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    backend: str = "embree"  # embree | blender | nvdiffrast
    views: int = 24
    resolution: int = 512
    fov_deg: float = 40.0
    elevation_deg: tuple[float, float] = (-20.0, 50.0)
    seed: int = 0
    rgb: bool = True
    samples: int = 32  # Cycles samples of blender's RGB image

    def __post_init__(self):
        rb.check_name(self.backend)
        if self.views < 1:
            raise ValueError(f"views must be at least 1, not {self.views}")
        if not 1 <= self.resolution <= MAX_RESOLUTION:
            raise ValueError(f"resolution must be in [1, {MAX_RESOLUTION}] pixels, not {self.resolution}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), not {self.fov_deg}")

    def cameras(self, asset_id: str) -> list[Camera]:
        """This asset's cameras: the same for every backend and every rerun."""
        return orbit_cameras(
            self.views, self.resolution, self.fov_deg, self.elevation_deg, asset_seed(self.seed, asset_id)
        )

    def backend_instance(self):
        options = {"samples": self.samples} if self.backend == "blender" else {}
        return rb.get_backend(self.backend, **options)


def encode_view(view: rb.View, camera: Camera, meta: dict) -> dict[str, bytes]:
    """The members of one view sample (DESIGN.md), by suffix."""
    members = {
        "normal.png": codec.encode_normal(view.normal, view.mask),
        "mask.png": codec.encode_mask(view.mask),
        "depth.npy.gz": codec.encode_depth(view.depth),
        "camera.json": codec.encode_json(camera.to_json()),
        "meta.json": codec.encode_json(meta),
    }
    if view.rgb is not None:
        members["rgb.png"] = codec.encode_rgb(view.rgb)
    return members


def render_one(item: dict, out_dir: str, cfg: RenderConfig) -> dict:
    """Render one asset's views into OUT/views/<asset_id>; returns its manifest row."""
    asset_id = item["asset_id"]
    row = {k: item.get(k) for k in ("asset_id", "source", "domain", "input_path")}
    row.update(backend=cfg.backend, views=cfg.views, status=item["status"])
    if item["status"] != "accepted":
        return {**row, "reason": item.get("reason") or "rejected upstream"}
    mesh = am.clean(am.load_glb(item["input_path"]))
    cameras = cfg.cameras(asset_id)
    backend = cfg.backend_instance()
    views = backend.render(mesh, cameras, seed=asset_seed(cfg.seed, asset_id), rgb=cfg.rgb)
    meta = {k: row[k] for k in ("asset_id", "source", "domain", "backend")}
    meta["backend_version"] = backend.version
    with io.atomic_dir(Path(out_dir) / VIEWS_DIR / asset_id) as tmp:
        for v, (camera, view) in enumerate(zip(cameras, views)):
            for suffix, data in encode_view(view, camera, {**meta, "view": v}).items():
                (tmp / f"{v:03d}.{suffix}").write_bytes(data)
    return {**row, "backend_version": backend.version, "dir": f"{VIEWS_DIR}/{asset_id}"}


def render_assets(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: RenderConfig,
    executor: ExecutorConfig | None = None,
) -> list[dict]:
    """Render every accepted asset of IN/manifest.jsonl (one task per asset); rejected inputs keep
    their row and reason. A changed render parameter or backend version re-renders everything."""
    in_dir = Path(in_dir)
    executor = executor or ExecutorConfig()
    items = []
    for row in mf.read_manifest(in_dir):
        item = {k: row.get(k) for k in ("asset_id", "source", "status", "reason", "input_path")}
        item["domain"] = row.get("domain") or "real"
        if row["status"] == "accepted":
            item["input_path"] = str(in_dir / row["path"])
            # a changed asset is re-rendered (run_stage redoes items whose content changed)
            item["input_sha256"] = row.get("sha256") or io.sha256_file(item["input_path"])
        items.append(item)
    if config.backend == "nvdiffrast" and not executor.gpus_per_task:
        executor = dataclasses.replace(executor, gpus_per_task=NVDIFFRAST_GPUS_PER_TASK)
    if not (executor.address or os.environ.get("RAY_ADDRESS")) and any(it["status"] == "accepted" for it in items):
        config.backend_instance()  # fail once, clearly, if the backend cannot run on this machine
    return run_stage(
        "render",
        out_dir,
        items,
        functools.partial(render_one, out_dir=str(out_dir), cfg=config),
        config={**dataclasses.asdict(config), "backend_version": rb.version(config.backend)},
        executor=executor,
        output_dirs=(VIEWS_DIR,),
        inputs=(in_dir,),
    )
