"""DVC stage `filter`: synthesized + ingested assets -> outputs/filter, metrics/filter.json."""

from hi3dgen.filtering import FilterConfig, filter_assets
from pipelines.common import OUT, ROOT, config, executor, log_rows, stage


def main() -> None:
    with stage("filter"):
        rows = filter_assets(
            [OUT / "synth", OUT / "ingest"],
            OUT / "filter",
            config(FilterConfig, "filter"),
            executor(),
            metrics_path=ROOT / "metrics" / "filter.json",
        )
        log_rows(rows)


if __name__ == "__main__":
    main()
