import io
import json
import tarfile
import zlib

import numpy as np
import pytest

from hi3dgen.data import codec
from hi3dgen.data.shards import ShardConfig, write_shards
from hi3dgen.data.webds import ShardStream, decode_view, shape_dataset, view_dataset, worker_skip
from hi3dgen.parallel import ExecutorConfig
from tests.data.conftest import RES, view_arrays

ASSETS = [
    ("s0", "synthetic", "sphere"),
    ("s1", "synthetic", "box"),
    ("s2", "synthetic", "torus"),
    ("s3", "synthetic", "sphere"),
    ("r0", "real", "box"),
]


@pytest.fixture
def shards(make_render, tmp_path):
    cfg = ShardConfig(
        val_fraction=0.25, samples_per_shard=2, shapes_per_shard=2, shape_views=2, surface_points=200, sdf_points=400
    )
    out = tmp_path / "shards"
    write_shards(make_render(ASSETS, views=3), out, cfg, ExecutorConfig(kind="inline"))
    return out


def test_view_reader_round_trips_exactly(shards):
    seen = 0
    render = shards.parent / "render"
    for split in ("train", "val"):
        for s in view_dataset(shards, split):
            seen += 1
            asset, v = s["key"].rsplit("_", 1)
            assert (s["asset_id"], s["view"]) == (asset, int(v))
            stored = (render / "views" / asset / f"{v}.normal.png").read_bytes()
            raw = codec.decode_normal_raw(stored)
            assert s["normal"].dtype == np.float32 and s["normal"].shape == (3, RES, RES)
            requant = np.round((s["normal"].transpose(1, 2, 0) * 0.5 + 0.5) * 65535).astype(np.uint16)
            requant[~s["mask"]] = 0
            assert np.array_equal(requant, raw)
            a = view_arrays(zlib.crc32(f"{asset}:{int(v)}".encode()))
            assert np.array_equal(s["mask"], a["mask"])
            assert np.abs(np.linalg.norm(s["normal"], axis=0)[s["mask"]] - 1).max() < 1e-4
            assert s["image"].shape == (3, RES, RES) and s["image"].dtype == np.float32
            assert np.array_equal(np.round(s["image"] * 255).astype(np.uint8).transpose(1, 2, 0), a["rgb"])
            assert np.array_equal(s["depth"], a["depth"])
            assert s["camera"]["K"].shape == (3, 3) and s["camera"]["c2w"][2, 3] == 2.0 + int(v)
    assert seen == 3 * len(ASSETS)


def test_the_view_decoder_gets_the_stored_gzip_bytes_of_depth(shards):
    """webdataset decompresses `.gz` members only in its decode stage, which the readers do not use:
    decode_view is handed the bytes the render stage wrote and decompresses them once."""
    render = shards.parent / "render"
    options = dict(shuffle=False, seed=0, resampled=False, start=0, batch_size=1, shuffle_buffer=1)
    samples = list(ShardStream(shards, "views", "train", "any", dict, **options))
    assert samples
    for s in samples:
        asset, v = s["__key__"].rsplit("_", 1)
        stored = (render / "views" / asset / f"{v}.depth.npy.gz").read_bytes()
        assert s["depth.npy.gz"] == stored and stored[:2] == b"\x1f\x8b"
        assert np.array_equal(decode_view(s)["depth"], view_arrays(zlib.crc32(f"{asset}:{int(v)}".encode()))["depth"])


def test_domain_filter_and_its_error(shards):
    ds = view_dataset(shards, "train", "synthetic")
    keys = [s["key"] for s in ds]
    assert keys and all(k.startswith("s") for k in keys) and len(keys) == ds.num_samples
    total_real = 0
    for split in ("train", "val"):
        try:
            total_real += len([s for s in view_dataset(shards, split, "real")])
        except ValueError as exc:
            assert "domain 'real'" in str(exc) and "synthetic (" in str(exc)
    assert total_real == 3
    with pytest.raises(ValueError, match="domain must be one of"):
        view_dataset(shards, "train", "cartoon")


def test_shape_reader(shards):
    shapes = {s["asset_id"]: s for split in ("train", "val") for s in shape_dataset(shards, split)}
    assert set(shapes) == {a for a, _, _ in ASSETS}
    s = shapes["s0"]  # sphere of radius 0.5
    assert s["surface"].shape == (200, 6) and s["surface"].dtype == np.float32
    assert np.allclose(np.linalg.norm(s["surface"][:, :3], axis=1), 0.5, atol=0.02)
    assert (np.einsum("ij,ij->i", s["surface"][:, :3], s["surface"][:, 3:]) > 0).all()  # outward
    assert s["sdf"].shape == (400, 4) and s["sdf"].dtype == np.float32
    r = np.linalg.norm(s["sdf"][:, :3], axis=1)
    clear = np.abs(r - 0.5) > 0.02
    assert np.array_equal((s["sdf"][clear, 3] < 0), r[clear] < 0.5)
    assert np.abs(np.abs(s["sdf"][clear, 3]) - np.abs(r[clear] - 0.5)).max() < 0.02
    assert s["normals"].shape == (2, 3, RES, RES) and s["masks"].shape == (2, RES, RES)
    assert s["masks"].dtype == bool and s["cameras"]["c2w"].shape == (2, 4, 4)


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_skips_exactly_n_samples(shards, shuffle):
    def keys(start, n):
        ds = view_dataset(shards, "train", shuffle=shuffle, seed=3, resampled=True, start=start, shuffle_buffer=4)
        it = iter(ds)
        return [next(it)["key"] for _ in range(n)]

    epoch = view_dataset(shards, "train").num_samples
    full = keys(0, 3 * epoch)
    assert sorted(full[:epoch]) == sorted(full[epoch : 2 * epoch])
    assert (full[:epoch] != full[epoch : 2 * epoch]) == shuffle  # reshuffled every epoch
    for start in (5, epoch + 2):
        assert keys(start, epoch) == full[start : start + epoch]


def test_workers_and_ranks_get_disjoint_shards(shards, monkeypatch):
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append({s["key"] for s in view_dataset(shards, "train", shuffle=True, seed=1)})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == view_dataset(shards, "train").num_samples


def test_worker_skip_matches_round_robin_batches():
    consumed = {w: 0 for w in range(3)}
    for batch in range(10):
        assert all(worker_skip(batch * 4, 4, w, 3) == consumed[w] for w in range(3))
        consumed[batch % 3] += 4
    assert worker_skip(7, 4, 0, 1) == 7
    with pytest.raises(ValueError):
        worker_skip(7, 4, 0, 2)


def test_dataloader_workers_read_disjoint_shards_and_collate(shards):
    import torch.utils.data

    ds = view_dataset(shards, "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    keys = [k for batch in loader for k in batch["key"]]
    assert sorted(keys) == sorted(s["key"] for s in ds)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["normal"].shape == (2, 3, RES, RES) and batch["camera"]["K"].shape == (2, 3, 3)


def test_a_torn_shard_is_named_with_how_to_rebuild_it(shards):
    entry = json.loads((shards / "shards.json").read_text())["sets"]["views"]["train"]["shards"][0]
    tar = shards / entry["path"]
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])  # cut short, as by a full disk or an interrupted copy
    with pytest.raises(ValueError) as exc:
        view_dataset(shards, "train")
    said = str(exc.value)
    assert said.startswith(f"shard {tar} has {len(data) // 2} bytes: shards.json records {len(data)} bytes")
    assert entry["sha256"] in said and f"hi3dgen shard --in RENDER --out {shards}" in said
    # The same size, but the second half zeroed (a tar reader takes zeros for its end), the first
    # header garbage, or a byte of a depth member flipped (its gzip checksum fails): found as the
    # shard is read.
    half = len(data) // 2
    members = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
    last = next(m.offset for m in members if m.name.split(".")[0] == members[-1].name.split(".")[0])
    depth = next(m for m in members if m.name.endswith(".depth.npy.gz"))
    at = depth.offset_data + depth.size // 2
    for torn, says in [
        (data[:half] + bytes(len(data) - half), "has a sample '.*' that cannot be decoded"),
        (data[:last] + bytes(len(data) - last), f"holds {entry['samples'] - 1} samples"),
        (b"\xff" * 512 + data[512:], r"cannot be read \(ReadError"),
        (
            data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :],
            f"has a sample '{depth.name.split('.')[0]}' that cannot be decoded "
            r"\(ValueError: depth.npy.gz cannot be decompressed",
        ),
    ]:
        tar.write_bytes(torn)
        with pytest.raises(ValueError, match=f"^shard {tar} {says}"):
            list(view_dataset(shards, "train"))


def test_val_shapes_carry_their_ground_truth_mesh_and_train_shapes_do_not(shards):
    """Evaluation scores reconstructions against the mesh the samples came from (dense samples on
    both sides); only val shapes carry it, so train shards do not grow."""
    from hi3dgen.eval.shapes import mesh_scores
    from hi3dgen.geometry.sdf import MeshSDF

    train, val = (list(shape_dataset(shards, split)) for split in ("train", "val"))
    assert train and val and all("mesh" not in s for s in train)
    for s in val:
        mesh = s["mesh"]
        assert mesh.is_watertight and mesh.volume > 0  # prepared: merged, outward
        assert MeshSDF(mesh).distance(s["surface"][:, :3].astype(np.float64)).max() < 1e-5  # samples lie on it
    with pytest.raises(ValueError, match="no ground-truth mesh"):
        mesh_scores([None], train[:1])
