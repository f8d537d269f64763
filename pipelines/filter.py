"""DVC stage `filter`: synthesized + ingested assets -> outputs/filter, metrics/filter.json."""

from hi3dgen.filtering import FilterConfig, filter_assets
from pipelines.common import OUT, ROOT, executor, log_rows, section_config, stage


def main() -> None:
    with stage("filter"):
        rows = filter_assets(
            [OUT / "synth", OUT / "ingest"],
            OUT / "filter",
            section_config(FilterConfig, "filter"),
            executor(),
            metrics_path=ROOT / "metrics" / "filter.json",
        )
        log_rows(rows)


if __name__ == "__main__":
    main()
