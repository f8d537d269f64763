"""DVC stage `shard`: WebDataset view and shape shards, split train/val by asset."""

from hi3dgen.data.shards import ShardConfig, write_shards
from pipelines.common import OUT, config, executor


def main() -> None:
    write_shards(OUT / "render", OUT / "shards", config(ShardConfig, "shard"), executor())


if __name__ == "__main__":
    main()
