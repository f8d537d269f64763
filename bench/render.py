"""Rendering throughput of each backend on the same assets: views per second for rendering alone
and end to end (render, encode every member through hi3dgen.data.codec, write a WebDataset tar),
on one core and on all cores (one process per core, each rendering whole assets, as the render
stage's tasks do). Backends that cannot run here are skipped with the reason.

    python bench/render.py                                  # every backend, 512², all cores
    python bench/render.py --backends nvdiffrast --views 24 # on the GPU machine
    python bench/render.py --save-reference ref.npz         # embree renders to compare against
    python bench/render.py --check-reference ref.npz        # nvdiffrast vs those renders

Runs without Ray and bpy installed (the GPU machine): only the backends asked for are imported,
inside the worker processes. Timings exclude process start, imports and one warm-up render;
processes start timing together (a barrier) and each renders for at least --seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from hi3dgen.assets.mesh import normalize
from hi3dgen.data.cameras import Camera
from hi3dgen.manifest import asset_seed
from hi3dgen.render import backend as rb
from hi3dgen.render.cameras import orbit_cameras


def make_assets(count: int) -> list[trimesh.Trimesh]:
    """Normalized test shapes of about 50k faces, from trimesh alone (no downloads, no CSG
    library, so the GPU machine makes the same ones)."""

    def bumpy_box():
        m = trimesh.creation.box()
        for _ in range(6):
            m = m.subdivide()  # 49,152 faces
        v = m.vertices
        bump = 0.03 * np.sin(20 * v[:, 0]) * np.sin(20 * v[:, 1]) * np.sin(20 * v[:, 2])
        return trimesh.Trimesh(v + bump[:, None] * m.vertex_normals, m.faces, process=False)

    def ridged_sphere():
        m = trimesh.creation.uv_sphere(count=[112, 112])  # 49,728 faces
        v = m.vertices
        r = 1.0 + 0.08 * np.sin(12 * np.arctan2(v[:, 1], v[:, 0])) * np.cos(3 * v[:, 2])
        return trimesh.Trimesh(v * r[:, None], m.faces, process=False)

    makers = [
        lambda: trimesh.creation.torus(0.35, 0.12, major_sections=250, minor_sections=100),
        bumpy_box,
        ridged_sphere,
        lambda: trimesh.creation.annulus(0.2, 0.45, 0.3, sections=6250),
    ]
    return [normalize(makers[i % len(makers)]()) for i in range(count)]


def asset_id(i: int) -> str:
    return f"bench-{i:03d}"


def cameras_for(i: int, views: int, resolution: int) -> list[Camera]:
    return orbit_cameras(views, resolution, seed=asset_seed(0, asset_id(i)))


# --- worker processes -------------------------------------------------------------------------

_W: dict = {}


def _init(name, assets, views, resolution, barrier, out_dir):
    os.environ["OMP_NUM_THREADS"] = "1"  # blender: one Cycles thread per process
    _W.update(name=name, assets=assets, views=views, resolution=resolution, barrier=barrier, out_dir=out_dir)


def _pin(worker: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[worker % len(cores)]})


def _timed(worker: int, procs: int, seconds: float, run) -> dict:
    """From a start common to all processes, `run(jobs)` over this worker's share of asset
    indices, which keep coming until `seconds` have passed; counts the views."""
    _W["barrier"].wait()
    t0 = time.time()
    done = []

    def jobs():
        k = worker
        while not done or time.time() - t0 < seconds:
            done.append(k % len(_W["assets"]))
            yield done[-1]
            k += procs

    run(jobs())
    return {"views": len(done) * _W["views"], "start": t0, "end": time.time()}


def _worker(task) -> dict:
    worker, procs, seconds = task
    _pin(worker)
    from hi3dgen.data.shards import write_tar
    from hi3dgen.render.stage import encode_view

    backend = rb.get_backend(_W["name"])
    assets, views, res = _W["assets"], _W["views"], _W["resolution"]
    cams = [cameras_for(i, views, res) for i in range(len(assets))]
    # warm-up: caches, CUDA kernels, the Blender session, webdataset's lazy imports
    view = backend.render(assets[0], cams[0][:1])[0]
    write_tar(Path(_W["out_dir"]) / f"warm-{worker}.tar", [{"__key__": "warm", **encode_view(view, cams[0][0], {})}])

    def render(jobs):
        for i in jobs:
            backend.render(assets[i], cams[i], seed=i)

    def render_on_device(jobs):
        for i in jobs:
            backend.render_tensors(assets[i], cams[i], seed=i)
        backend.torch.cuda.synchronize()

    def samples(i):
        for v, (cam, view) in enumerate(zip(cams[i], backend.render(assets[i], cams[i], seed=i))):
            meta = {
                "asset_id": asset_id(i),
                "view": v,
                "source": "bench",
                "domain": "synthetic",
                "backend": backend.name,
                "backend_version": backend.version,
            }
            yield {"__key__": f"{asset_id(i)}_{v:03d}", **encode_view(view, cam, meta)}

    def end_to_end(jobs):  # one shard per process, as a shard writer would
        write_tar(
            Path(_W["out_dir"]) / f"{backend.name}-{procs}-{worker}.tar",
            (sample for i in jobs for sample in samples(i)),
        )

    out = {"render": _timed(worker, procs, seconds, render), "e2e": _timed(worker, procs, seconds, end_to_end)}
    if hasattr(backend, "render_tensors"):
        out["device"] = _timed(worker, procs, seconds, render_on_device)
    return out


def measure(name: str, assets, views: int, resolution: int, procs: int, seconds: float) -> dict:
    """Views per second of `procs` processes rendering together, per mode."""
    ctx = mp.get_context("spawn")  # CUDA and Blender do not survive fork
    with tempfile.TemporaryDirectory(prefix="hi3dgen-bench-") as tmp:
        barrier = ctx.Barrier(procs)
        with ctx.Pool(procs, _init, (name, assets, views, resolution, barrier, tmp)) as pool:
            results = pool.map(_worker, [(w, procs, seconds) for w in range(procs)], chunksize=1)
    rates = {}
    for mode in results[0]:
        runs = [r[mode] for r in results]
        wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
        rates[mode] = sum(r["views"] for r in runs) / wall
    return rates


def available(name: str) -> str | None:
    """None if the backend runs here, else why not (checked in a child: no CUDA in this process)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_probe, (name,))


def _probe(name: str) -> str | None:
    try:
        rb.get_backend(name)
    except Exception as exc:  # the reason is the report
        return f"{type(exc).__name__}: {exc}"
    return None


# --- normal agreement against embree renders made elsewhere ----------------------------------


def save_reference(path: str, assets, views: int, resolution: int) -> None:
    embree = rb.get_backend("embree")
    arrays = {}
    for i, mesh in enumerate(assets):
        cams = cameras_for(i, views, resolution)
        rendered = embree.render(mesh, cams, seed=i, rgb=False)
        arrays[f"{i}_vertices"] = np.asarray(mesh.vertices, np.float64)
        arrays[f"{i}_faces"] = np.asarray(mesh.faces, np.int32)
        arrays[f"{i}_cameras"] = np.array(json.dumps([c.to_json() for c in cams]))
        arrays[f"{i}_normal"] = np.stack([v.normal for v in rendered]).astype(np.float16)
        arrays[f"{i}_mask"] = np.stack([v.mask for v in rendered])
        arrays[f"{i}_depth"] = np.stack([v.depth for v in rendered])
    np.savez_compressed(path, **arrays)
    print(f"saved embree reference of {len(assets)} assets x {views} views at {resolution}² to {path}")


def check_reference(path: str, name: str) -> dict:
    """Render the reference's meshes and cameras with `name`; agreement with embree per view."""
    backend = rb.get_backend(name)
    ref = np.load(path)
    per_view, deterministic = [], True
    for i in range(len([k for k in ref.files if k.endswith("_faces")])):
        mesh = trimesh.Trimesh(ref[f"{i}_vertices"], ref[f"{i}_faces"], process=False)
        cams = [Camera.from_json(c) for c in json.loads(str(ref[f"{i}_cameras"]))]
        views = backend.render(mesh, cams, seed=i)
        again = backend.render(mesh, cams, seed=i)
        for v, (view, twin) in enumerate(zip(views, again)):
            deterministic &= all(
                np.array_equal(getattr(view, k), getattr(twin, k)) for k in ("normal", "mask", "depth", "rgb")
            )
            expected = rb.View(ref[f"{i}_normal"][v].astype(np.float32), ref[f"{i}_mask"][v], ref[f"{i}_depth"][v])
            per_view.append(rb.agreement(expected, view))
    summary = {k: float(np.mean([a[k] for a in per_view])) for k in per_view[0]}
    summary.update(
        worst_view_angle_deg=max(a["mean_angle_deg"] for a in per_view),
        worst_view_mask_agreement=min(a["mask_agreement"] for a in per_view),
        deterministic=bool(deterministic),
        views=len(per_view),
        backend=name,
        against="embree",
    )
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default=",".join(rb.BACKENDS), help="comma-separated, of " + ", ".join(rb.BACKENDS))
    p.add_argument("--assets", type=int, default=4, help="distinct meshes of ~50k faces")
    p.add_argument("--views", type=int, default=8, help="views per asset render")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--procs", type=int, default=os.cpu_count(), help="the all-cores figure's processes")
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    p.add_argument("--out", default=None, help="write the figures here as JSON")
    p.add_argument("--save-reference", metavar="NPZ", help="save embree renders and stop")
    p.add_argument(
        "--check-reference", metavar="NPZ", help="compare each backend's normals with the saved embree renders first"
    )
    args = p.parse_args(argv)
    assets = make_assets(args.assets)
    if args.save_reference:
        save_reference(args.save_reference, assets, args.views, args.resolution)
        return 0
    report = {
        "resolution": args.resolution,
        "views_per_asset": args.views,
        "assets": args.assets,
        "faces": [len(m.faces) for m in assets],
        "cores": len(os.sched_getaffinity(0)),
        "results": {},
        "skipped": {},
        "agreement": {},
    }
    rows = []
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        rb.check_name(name)
        reason = available(name)
        if reason:
            print(f"skip {name}: {reason}", flush=True)
            report["skipped"][name] = reason
            continue
        if args.check_reference:
            ctx = mp.get_context("spawn")
            with ctx.Pool(1) as pool:
                report["agreement"][name] = pool.apply(check_reference, (args.check_reference, name))
            print(f"{name} vs embree: {json.dumps(report['agreement'][name])}", flush=True)
        for procs in sorted({1, args.procs}):
            rates = measure(name, assets, args.views, args.resolution, procs, args.seconds)
            report["results"].setdefault(name, {})[str(procs)] = rates
            rows.append((name, procs, rates))
            print(f"{name} x{procs}: " + ", ".join(f"{k} {v:.4g} views/s" for k, v in rates.items()), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{args.resolution}² views, {args.views} views per asset render, "
        f"{args.assets} assets of {min(report['faces'])}-{max(report['faces'])} faces, "
        f"{report['cores']} cores"
    )
    print("| backend | processes | render (views/s) | end to end (views/s) | on device (views/s) |")
    print("|---|---:|---:|---:|---:|")
    for name, procs, r in rows:
        device = f"{r['device']:.4g}" if "device" in r else "-"
        print(f"| {name} | {procs} | {r['render']:.4g} | {r['e2e']:.4g} | {device} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
