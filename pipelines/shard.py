"""DVC stage `shard`: WebDataset view and shape shards, split train/val by asset."""

from hi3dgen import manifest
from hi3dgen.data.shards import ShardConfig, write_shards
from pipelines.common import OUT, executor, log_rows, section_config, stage


def main() -> None:
    with stage("shard"):
        write_shards(OUT / "render", OUT / "shards", section_config(ShardConfig, "shard"), executor())
        log_rows(manifest.read_manifest(OUT / "shards"))


if __name__ == "__main__":
    main()
