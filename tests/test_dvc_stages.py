"""The data stages through DVC on a fresh copy of the project: `dvc repro shard` runs them, an
unchanged rerun does nothing, a render parameter reruns only render and shard."""

import json
import re

import pytest
import yaml

from tests import project

pytestmark = pytest.mark.slow


def _ran(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def test_dvc_repro_data_stages(tmp_path):
    root = project.make(tmp_path)
    first = project.run(root, "dvc", "repro", "shard")
    assert _ran(first.stdout) == ["synthesize", "ingest", "filter", "render", "shard"]
    shards = json.loads((root / "outputs" / "shards" / "shards.json").read_text())
    assert shards  # a shard manifest was written
    tars = {p.name: p.read_bytes() for p in (root / "outputs" / "shards").rglob("*.tar")}
    assert tars

    again = project.run(root, "dvc", "repro", "shard")
    assert _ran(again.stdout) == []

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["render"]["resolution"] = 40
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = project.run(root, "dvc", "repro", "shard")
    assert _ran(changed.stdout) == ["render", "shard"]
