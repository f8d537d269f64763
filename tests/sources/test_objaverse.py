import urllib.error
import urllib.request

import pytest
import trimesh

from hi3dgen.parallel import ExecutorConfig
from hi3dgen.sources.objaverse import ingest_objaverse
from tests.sources import files

INLINE = ExecutorConfig(kind="inline")
A, B, C = "0a" * 16, "0b" * 16, "0c" * 16  # uids look like 32 hex digits


@pytest.fixture
def network(monkeypatch):
    """Every download fails at once (the sandbox has no network anyway); calls are recorded."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    return calls


@pytest.fixture
def cache(tmp_path):
    """A: a valid GLB with annotations; B: a broken GLB; C: listed in the index but not cached."""
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(files.box()))
    meta = {A: {"name": "Box", "license": "by", "viewCount": 3}}
    files.objaverse_cache(tmp_path / "cache", {A: glb, B: b"glTF junk", C: None}, meta)
    return tmp_path / "cache"


def test_cached_objects_need_no_network(tmp_path, cache, network):
    rows = ingest_objaverse(tmp_path / "out", INLINE, uids=[A, B, C, "nope"], cache_dir=cache, download=False)
    by_uid = {r["uid"]: r for r in rows}
    assert by_uid[A]["status"] == "accepted" and by_uid[A]["faces"] == 12
    assert (by_uid[A]["name"], by_uid[A]["license"]) == ("Box", "by")
    assert by_uid[A]["input_path"].endswith(f"hf-objaverse-v1/glbs/000-000/{A}.glb")
    assert (tmp_path / "out" / by_uid[A]["path"]).is_file()
    assert {u: r.get("reason", "").split(":")[0] for u, r in by_uid.items()} == {
        A: "",
        B: "invalid_file",
        C: "not_cached",
        "nope": "missing_uid",
    }
    assert all(r["source"] == "objaverse" and r["asset_id"] == f"objaverse-{r['uid']}" for r in rows)
    assert network == []


def test_a_failed_download_is_a_row(tmp_path, cache, network):
    rows = ingest_objaverse(tmp_path / "out", INLINE, uids=[C, A], cache_dir=cache)
    assert [r.get("reason", "").split(":")[0] for r in rows] == ["download_failed", ""]
    assert network and all("huggingface.co" in url for url in network)


def test_limit_takes_the_first_uids_sorted_without_annotations(tmp_path, network):
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(files.box()))
    root = files.objaverse_cache(tmp_path / "cache", {C: glb, A: glb, B: glb})
    rows = ingest_objaverse(tmp_path / "out", INLINE, limit=2, cache_dir=root, download=False)
    assert [(r["uid"], r["status"]) for r in rows] == [(A, "accepted"), (B, "accepted")]
    assert "name" not in rows[0]
    (root / "object-paths.json.gz").unlink()  # offline with no index: the cached GLBs
    rows = ingest_objaverse(tmp_path / "out2", INLINE, limit=5, cache_dir=root, download=True)
    assert [r["uid"] for r in rows] == [A, B, C]
    with pytest.raises(ValueError, match="no Objaverse index"):
        ingest_objaverse(tmp_path / "out3", INLINE, limit=1, cache_dir=tmp_path / "nothing")
