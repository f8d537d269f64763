"""DVC stage `synthesize`: DetailVerse assets -> outputs/synth."""

from hi3dgen.synthesis import synthesize
from pipelines.common import OUT, executor, params


def main() -> None:
    p = params("synthesize")
    synthesize(p["count"], p["seed"], OUT / "synth", executor(), families=p.get("families"))


if __name__ == "__main__":
    main()
