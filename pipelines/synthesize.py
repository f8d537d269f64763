"""DVC stage `synthesize`: DetailVerse assets -> outputs/synth."""

import statistics

from hi3dgen.synthesis import synthesize
from pipelines.common import OUT, executor, log_rows, params, stage


def main() -> None:
    p = params("synthesize")
    with stage("synthesize"):
        rows = synthesize(p["count"], p["seed"], OUT / "synth", executor(), families=p.get("families"))
        ok = [r for r in rows if r["status"] == "accepted"]
        log_rows(rows, median_sharp_edges=statistics.median([r["sharp_edges"] for r in ok]) if ok else 0)


if __name__ == "__main__":
    main()
