"""Ingestion of external 3D assets (a local folder, Objaverse) into normalized asset GLBs.

`ingest_local` and `ingest_objaverse` are imported on first use: the CLI imports this package
and must not pay for trimesh and objaverse at start-up.
"""


def __getattr__(name: str):
    if name == "ingest_local":
        from hi3dgen.sources.local import ingest_local

        return ingest_local
    if name == "ingest_objaverse":
        from hi3dgen.sources.objaverse import ingest_objaverse

        return ingest_objaverse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
