"""Quality filtering: per-asset metrics, thresholds from params.yaml, duplicates by geometry hash."""

from hi3dgen.filtering.filter import FilterConfig, filter_assets

__all__ = ["FilterConfig", "filter_assets"]
