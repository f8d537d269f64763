"""Journal appends: the cost of recording N finished items of a stage (`hi3dgen.manifest.Journal`),
total and per row at growing N, so a cost that grows with the journal shows. Also the cost of
reading it back (what a resuming run does once) and of the closure digest of a stage's code.

    python bench/journal.py                 # 1k, 10k, 100k rows in a temporary folder
    python bench/journal.py --rows 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hi3dgen import lineage
from hi3dgen import manifest as mf


def row(i: int) -> dict:
    """A row the size of a render stage's."""
    return {
        "asset_id": f"dv-s0-{i:06d}",
        "source": "detailverse",
        "domain": "synthetic",
        "status": "accepted",
        "input_path": f"/data/outputs/filter/assets/dv-s0-{i:06d}.glb",
        "backend": "embree",
        "views": 12,
        "backend_version": "embreex 4.4.0",
        "dir": f"views/dv-s0-{i:06d}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = p.parse_args()
    print(f"{'rows':>9} {'append s':>9} {'µs/row':>8} {'last 10% µs/row':>16} {'read s':>7} {'MB':>6}")
    for n in args.rows:
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            journal = mf.Journal(Path(d), "fp")
            t0 = time.perf_counter()
            tail_start = None
            for i in range(n):
                if i == n - n // 10:
                    tail_start = time.perf_counter()
                journal.append(row(i), "item")
            journal.close()
            total = time.perf_counter() - t0
            tail = time.perf_counter() - tail_start
            t1 = time.perf_counter()
            done = mf.Journal(Path(d), "fp").done()
            read = time.perf_counter() - t1
            assert len(done) == n
            size = journal.path.stat().st_size / 1e6
        print(f"{n:>9} {total:>9.2f} {1e6 * total / n:>8.1f} {1e6 * tail / (n // 10):>16.1f} {read:>7.2f} {size:>6.1f}")
    t0 = time.perf_counter()
    files = lineage.closure(["pipelines.render"])
    digest = lineage.code_digest("pipelines.render")
    print(
        f"\ncode digest of pipelines.render ({len(files)} files, {digest}): {1e3 * (time.perf_counter() - t0):.1f} ms"
    )


if __name__ == "__main__":
    main()
