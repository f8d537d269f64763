"""Bytes and milliseconds per view of `depth.npy.gz` at each gzip level, on the depths of a render
folder (the render stage's output): the .npy bytes uncompressed, then per level the compressed
bytes, the encoding and the decoding time per view (median over the views of the best of 3, one
core), which set `hi3dgen.data.codec.DEPTH_LEVEL`.

    python bench/rebuild.py --count 8 --out DIR --backend embree --views 12 --resolution 512
    MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 python bench/depth.py DIR/render

Without the two glibc settings the first level's decoding also pays the page faults of fresh 1 MB
buffers (glibc maps each anew until a free raises its threshold): ~1 ms a view more on one row.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hi3dgen.data import codec
from hi3dgen.render.stage import VIEWS_DIR


def ms(fn, repeats: int = 3) -> float:
    """The best of `repeats` calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("render", type=Path, help="a render stage's output folder")
    p.add_argument("--levels", type=int, nargs="+", default=list(range(1, 10)))
    args = p.parse_args(argv)
    files = sorted((args.render / VIEWS_DIR).glob("*/*.depth.npy.gz"))
    if not files:
        raise SystemExit(f"no view depths under {args.render / VIEWS_DIR}")
    depths = [codec.decode_depth(f.read_bytes()) for f in files]
    raw = [codec.encode_npy(d) for d in depths]
    coverage = statistics.mean(float((d > 0).mean()) for d in depths)
    shapes = sorted({d.shape for d in depths})
    print(f"{len(depths)} views {shapes} of {args.render}, {coverage:.1%} of pixels covered on average")
    npy = statistics.mean(map(len, raw))
    print(f"current DEPTH_LEVEL {codec.DEPTH_LEVEL}; .npy uncompressed: {npy / 1e6:.3f} MB a view")
    print("| level | MB a view | ratio | encode ms | decode ms |")
    print("|---:|---:|---:|---:|---:|")
    for level in args.levels:
        packed = [gzip.compress(r, compresslevel=level, mtime=0) for r in raw]
        assert all(np.array_equal(codec.decode_npy(gzip.decompress(b)), d) for b, d in zip(packed, depths))
        encode = statistics.median(ms(lambda r=r: gzip.compress(r, compresslevel=level, mtime=0)) for r in raw)
        decode = statistics.median(ms(lambda b=b: codec.decode_npy(gzip.decompress(b))) for b in packed)
        size = statistics.mean(map(len, packed))
        print(f"| {level} | {size / 1e6:.4f} | {npy / size:.1f} | {encode:.2f} | {decode:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
