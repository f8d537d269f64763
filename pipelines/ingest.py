"""DVC stage `ingest`: local files (data/, tracked by data.dvc) or Objaverse -> outputs/ingest."""

from hi3dgen.sources import ingest_local, ingest_objaverse
from pipelines.common import OUT, ROOT, executor, log_rows, params, stage


def main() -> None:
    p = params("ingest")
    out = OUT / "ingest"
    with stage("ingest"):
        if p["source"] == "local":
            rows = ingest_local(ROOT / p["path"], out, executor())
        elif p["source"] == "objaverse":
            rows = ingest_objaverse(
                out, executor(), uids=p.get("uids"), limit=p.get("limit"), cache_dir=p.get("cache_dir")
            )
        else:
            raise ValueError(f"params.yaml ingest.source must be 'local' or 'objaverse', not {p['source']!r}")
        log_rows(rows)


if __name__ == "__main__":
    main()
