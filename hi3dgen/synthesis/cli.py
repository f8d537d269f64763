"""`hi3dgen synth`: write DetailVerse assets and their manifest."""

from __future__ import annotations

from hi3dgen.parallel import add_executor_args, executor_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="procedurally synthesize DetailVerse assets (GLB + manifest.jsonl)")
    p.add_argument("--count", type=int, required=True, help="number of assets")
    p.add_argument("--seed", type=int, default=0, help="asset i is a function of (seed, i) only")
    p.add_argument("--out", required=True, help="output folder (assets/ and manifest.jsonl)")
    p.add_argument("--families", default=None, help="comma-separated generator families, in round robin (default: all)")
    add_executor_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from hi3dgen.synthesis import stats, synthesize

    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    rows = synthesize(args.count, args.seed, args.out, executor_from_args(args), families)
    s = stats(rows)
    if s["assets"]:
        print(
            f"[synthesize] median sharp edges {s['median_sharp_edges']:.0f}, watertight "
            f"{100 * s['watertight_share']:.1f}%, median faces {s['median_faces']:.0f}"
        )
        for name, f in s["families"].items():
            print(
                f"[synthesize]   {name}: {f['assets']} assets, median sharp edges "
                f"{f['median_sharp_edges']:.0f}, watertight {100 * f['watertight_share']:.0f}%"
            )
    return 0
