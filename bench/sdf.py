"""SDF samples: the shard stage's `shape_samples` per DetailVerse asset, on one core, and (with
--against-old) the same call of an earlier `hi3dgen/geometry/sdf.py` on the same asset, with the
agreement of their signs and distances.

Assets come from the project's own synthesis (as the synthesize stage makes them, through a GLB
file as the shard stage reads them); `shape_samples` runs with the shard stage's defaults
(`ShardConfig`). Both implementations get the same sample points (same seed), so their SDF values
compare point by point. Times are CPU seconds of this process, pinned to one core with one thread;
"prepare s" is the part of both that is the same code (`prepare`: trimesh's clean-up, orientation).

    git show 423efcd:hi3dgen/geometry/sdf.py > /tmp/sdf_old.py
    python bench/sdf.py --against-old /tmp/sdf_old.py            # one asset of every family
    python bench/sdf.py --families gear_train heat_sink --per-family 2
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: the shard stage runs one single-threaded process per core

import igl  # noqa: E402
import numpy as np  # noqa: E402

from hi3dgen.assets.mesh import load_glb, normalize, save_glb  # noqa: E402
from hi3dgen.data.shards import ShardConfig  # noqa: E402
from hi3dgen.geometry import sdf  # noqa: E402
from hi3dgen.synthesis import csg  # noqa: E402
from hi3dgen.synthesis.families import FAMILIES, Params  # noqa: E402


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("sdf_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asset(family: str, seed: int, index: int, tmp: Path):
    """A DetailVerse asset as `synthesize_one` makes it, read back from its GLB."""
    params = Params(np.random.default_rng(np.random.SeedSequence((seed, index))))
    path = tmp / f"{family}-{index}.glb"
    save_glb(normalize(csg.to_asset_mesh(FAMILIES[family](params))), path)
    return load_glb(path)


def timed(module, mesh, geometry: dict) -> tuple[dict, float]:
    t0 = time.process_time()
    out = module.shape_samples(
        mesh,
        surface_points=geometry["surface_points"],
        sdf_points=geometry["sdf_points"],
        near_sigmas=tuple(geometry["near_sigmas"]),
        uniform_fraction=geometry["uniform_fraction"],
        seed=geometry["seed"],
    )
    return out, time.process_time() - t0


def agreement(new: np.ndarray, old: np.ndarray) -> dict:
    """Share of samples with the same sign, and |d_new - d_old| (absolute, and relative to |d_old|)."""
    diff = np.abs(new - old)
    return {
        "sign": float(np.mean((new < 0) == (old < 0))),
        "max": float(diff.max()),
        "mean": float(diff.mean()),
        "rel": float((diff / np.maximum(np.abs(old), 1e-6)).max()),
    }


def winding_error(module, mesh, points: np.ndarray, exact: np.ndarray) -> float:
    return float(np.abs(module.MeshSDF(mesh).winding_number(points) - exact).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--per-family", type=int, default=1, help="assets per family")
    p.add_argument("--seed", type=int, default=0, help="synthesis seed (asset i of a family is index i)")
    p.add_argument("--against-old", metavar="FILE", help="an earlier hi3dgen/geometry/sdf.py to compare with")
    p.add_argument(
        "--winding-points",
        type=int,
        default=1024,
        help="SDF samples (every k-th) whose winding numbers are checked against libigl's exact sum",
    )
    p.add_argument("--core", type=int, default=0, help="the core to pin this process to")
    args = p.parse_args()
    os.sched_setaffinity(0, {args.core})
    old = load_module(args.against_old) if args.against_old else None
    geometry = ShardConfig().geometry()
    print(
        f"shape_samples with {geometry}, one core (cpu {args.core}), CPU seconds; libigl "
        f"{importlib.metadata.version('libigl')}, numpy {np.__version__}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "sign: share of SDF samples with the same sign (all, near-surface, uniform); |Δd| = |d_new - d_old|, "
        "rel = |Δd| / |d_old|; max |w - exact|: winding-number error (new / old)"
    )
    head = f"{'asset':<20} {'faces':>6} {'prepare s':>9} {'new s':>6}"
    if old:
        head += (
            f" {'old s':>6} {'speedup':>7} {'sign all':>8} {'near':>7} {'uniform':>7} {'max|Δd|':>8}"
            f" {'near/unif':>15} {'mean|Δd|':>8} {'max rel':>8} {'max |w - exact|':>15}"
        )
    print(head)
    totals = {"new": 0.0, "old": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            for i in range(args.per_family):
                index = i * len(FAMILIES) + list(FAMILIES).index(family)
                mesh = asset(family, args.seed, index, Path(tmp))
                t0 = time.process_time()
                prepared = sdf.prepare(mesh)
                t_prepare = time.process_time() - t0
                new, t_new = timed(sdf, mesh, geometry)
                totals["new"] += t_new
                row = f"{family + '-' + str(index):<20} {new['faces']:>6} {t_prepare:>9.2f} {t_new:>6.2f}"
                if old:
                    ref, t_old = timed(old, mesh, geometry)
                    totals["old"] += t_old
                    assert np.array_equal(new["sdf"][:, :3], ref["sdf"][:, :3]), "different sample points"
                    assert np.array_equal(new["surface"], ref["surface"]), "different surface samples"
                    n_near = sum(new["counts"]["near"])
                    d_new, d_old = new["sdf"][:, 3].astype(np.float64), ref["sdf"][:, 3].astype(np.float64)
                    a, near, uni = (
                        agreement(d_new[s], d_old[s]) for s in (slice(None), slice(0, n_near), slice(n_near, None))
                    )
                    pts = new["sdf"][:: max(1, len(d_new) // args.winding_points), :3].astype(np.float64)
                    exact = igl.winding_number(
                        np.asarray(prepared.vertices, np.float64), np.asarray(prepared.faces, np.int64), pts
                    )
                    w_new, w_old = (winding_error(m, prepared, pts, exact) for m in (sdf, old))
                    row += (
                        f" {t_old:>6.2f} {t_old / t_new:>6.1f}x {a['sign']:>8.5f} {near['sign']:>7.5f}"
                        f" {uni['sign']:>7.5f} {a['max']:>8.1e} {near['max']:>7.1e}/{uni['max']:>7.1e}"
                        f" {a['mean']:>8.1e} {a['rel']:>8.1e} {w_new:>7.3f}/{w_old:>7.3f}"
                    )
                print(row, flush=True)
    line = f"total new {totals['new']:.1f} s"
    if old:
        line += f", old {totals['old']:.1f} s: {totals['old'] / totals['new']:.1f}x"
    print(f"{line}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
