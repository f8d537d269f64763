import gzip
import hashlib
import json
import tarfile

from hi3dgen import manifest as mf
from hi3dgen.data.shards import ShardConfig, assign_splits, write_shards
from hi3dgen.parallel import ExecutorConfig

INLINE = ExecutorConfig(kind="inline")
ASSETS = [
    ("s0", "synthetic", "sphere"),
    ("s1", "synthetic", "box"),
    ("s2", "synthetic", "torus"),
    ("r0", "real", "sphere"),
    ("r1", "real", "box"),
    ("bad", "synthetic", "broken"),
]


def small_config(**kw):
    base = dict(
        val_fraction=0.4, samples_per_shard=4, shapes_per_shard=2, shape_views=2, surface_points=128, sdf_points=256
    )
    return ShardConfig(**{**base, **kw})


def tar_digests(out):
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*/*.tar"))
    }


def members(path):
    with tarfile.open(path) as tf:
        return tf.getmembers()


def test_shards_byte_identical_on_rerun_and_after_deleting_output(make_render, tmp_path, capsys):
    render = make_render(ASSETS)
    out = tmp_path / "shards"
    index = write_shards(render, out, small_config(), INLINE)
    first = tar_digests(out)
    index_bytes = (out / "shards.json").read_bytes()
    assert first and index["totals"]["shards"] == len(first)
    for name in ("views", "shapes"):
        for split in ("train", "val"):
            for shard in index["sets"][name][split]["shards"]:
                assert first[shard["path"]] == shard["sha256"]
                assert len({m.name.split(".")[0] for m in members(out / shard["path"])}) == shard["samples"]

    capsys.readouterr()
    write_shards(render, out, small_config(), INLINE)
    assert "SDF cached for 5 assets, 1 to compute" in capsys.readouterr().err  # failures retry
    assert tar_digests(out) == first

    victim = out / sorted(first)[0]
    victim.unlink()
    (out / "shards.json").unlink()
    write_shards(render, out, small_config(), INLINE)
    assert tar_digests(out) == first
    assert (out / "shards.json").read_bytes() == index_bytes


def test_tar_headers_are_fixed(make_render, tmp_path):
    out = tmp_path / "shards"
    write_shards(make_render(ASSETS[:2]), out, small_config(), INLINE)
    for path in out.glob("*/*.tar"):
        ms = members(path)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in ms} == {(1577836800, 0, 0, "hi3dgen", 0o444)}
        keys = [m.name.split(".", 1) for m in ms]
        assert keys == sorted(keys, key=lambda k: k[0]) and all(
            "_" in k[0] or path.parent.name == "shapes" for k in keys
        )


def test_manifest_rejections_and_split_by_asset(make_render, tmp_path):
    out = tmp_path / "shards"
    index = write_shards(make_render(ASSETS), out, small_config(), INLINE)
    rows = {r["asset_id"]: r for r in mf.read_manifest(out)}
    assert set(rows) == {a for a, _, _ in ASSETS} | {"gone"}
    assert rows["gone"]["status"] == "rejected" and rows["gone"]["reason"] == "render_failed: test"
    assert rows["bad"]["status"] == "rejected" and rows["bad"]["reason"].startswith("sdf_failed:")
    accepted = {a: r["split"] for a, r in rows.items() if r["status"] == "accepted"}
    assert set(accepted.values()) == {"train", "val"}
    for name in ("views", "shapes"):
        for split in ("train", "val"):
            for shard in index["sets"][name][split]["shards"]:
                ids = {
                    m.name.split(".")[0].rsplit("_", 1)[0] if name == "views" else m.name.split(".")[0]
                    for m in members(out / shard["path"])
                }
                assert "bad" not in ids and all(accepted[a] == split for a in ids)
    assert index["totals"]["views_samples"] == 3 * len(accepted)
    assert index["totals"]["shapes_samples"] == len(accepted)
    assert json.loads((out / "shards.json").read_text())["config"]["val_fraction"] == 0.4


def test_split_is_stable_when_assets_are_added():
    ids = [f"asset-{i}" for i in range(200)]
    before = assign_splits(ids[:100], 0.2)
    after = assign_splits(ids, 0.2)
    assert all(after[a] == before[a] for a in before)
    assert 20 < sum(s == "val" for s in after.values()) < 60
    assert list(assign_splits(["only-one", "only-two"], 0.01).values()).count("val") == 1
    assert set(assign_splits(ids, 0.0).values()) == {"train"}


def test_incomplete_views_reject_the_asset(make_render, tmp_path):
    render = make_render(ASSETS[:3])
    (render / "views" / "s1" / "001.depth.npy.gz").unlink()
    # a folder of the layout before depth.npy.gz (an uncompressed depth.npy) is rejected the same way
    for gz in (render / "views" / "s2").glob("*.depth.npy.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    out = tmp_path / "shards"
    write_shards(render, out, small_config(), INLINE)
    rows = {r["asset_id"]: r for r in mf.read_manifest(out)}
    assert rows["s1"]["status"] == "rejected" and rows["s1"]["reason"] == "incomplete_view: view 001 lacks depth.npy.gz"
    assert rows["s2"]["status"] == "rejected" and rows["s2"]["reason"] == "incomplete_view: view 000 lacks depth.npy.gz"
    assert rows["s0"]["status"] == "accepted"


def test_ray_fan_out_gives_the_same_shards(make_render, tmp_path, ray_local):
    render = make_render(ASSETS[:3])
    write_shards(render, tmp_path / "a", small_config(), INLINE)
    write_shards(render, tmp_path / "b", small_config(), ExecutorConfig(kind="ray"))
    assert tar_digests(tmp_path / "a") == tar_digests(tmp_path / "b")


def test_cli_shard(make_render, tmp_path, monkeypatch, capsys):
    import hi3dgen_cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("hi3dgen.data.cli",))
    render = make_render(ASSETS[:3])
    rc = cli.main(
        [
            "shard",
            "--in",
            str(render),
            "--out",
            str(tmp_path / "out"),
            "--executor",
            "inline",
            "--val-fraction",
            "0.4",
            "--samples-per-shard",
            "2",
            "--surface-points",
            "64",
            "--sdf-points",
            "128",
            "--shape-views",
            "2",
            "--near-sigmas",
            "0.01",
            "0.03",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "4 assets: 3 accepted, 1 rejected" in text and "train:" in text and "val:" in text
    index = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert index["config"]["near_sigmas"] == [0.01, 0.03]
    assert all(s["samples"] <= 2 for s in index["sets"]["views"]["train"]["shards"])
    assert (
        cli.main(["shard", "--in", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2"), "--executor", "inline"])
        == 2
    )
