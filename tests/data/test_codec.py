"""The writers of the view members: standard PNGs that cv2 and PIL read back exactly, and gzip'd
depth that decodes bit for bit; the same bytes for the same arrays."""

import gzip
import io

import numpy as np
import pytest
from PIL import Image

from hi3dgen.data import codec


def _normals(rng, h, w):
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n, rng.random((h, w)) > 0.3


def test_members_decode_to_what_was_encoded_and_encode_to_the_same_bytes():
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (3, 7), (64, 48)):
        normal, mask = _normals(rng, h, w)
        data = codec.encode_normal(normal, mask)
        expected = np.round((normal * 0.5 + 0.5) * 65535).astype(np.uint16) * mask[..., None]
        assert np.array_equal(codec.decode_normal_raw(data), expected)
        assert data == codec.encode_normal(normal.copy(), mask.copy())
        assert np.array_equal(codec.decode_mask(codec.encode_mask(mask)), mask)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert np.array_equal(codec.decode_rgb(codec.encode_rgb(rgb)), rgb)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(codec.encode_rgb(rgb)))), rgb)
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(codec.encode_rgb(rgba)))), rgba)
        grey = np.asarray(Image.open(io.BytesIO(codec.encode_mask(mask))))
        assert np.array_equal(grey, mask.astype(np.uint8) * 255)


def test_depth_decodes_bit_for_bit_from_deterministic_gzip_of_the_npy():
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, np.finfo(np.float32).max], np.float32)
    for h, w in ((1, 1), (3, 7), (64, 48)):
        depth = np.where(rng.random((h, w)) > 0.3, rng.uniform(0.5, 3.0, (h, w)), 0).astype(np.float32)
        depth.flat[: min(depth.size, len(special))] = special[: depth.size]
        data = codec.encode_depth(depth)
        back = codec.decode_depth(data)
        assert back.dtype == np.float32 and back.shape == (h, w) and back.tobytes() == depth.tobytes()
        assert gzip.decompress(data) == codec.encode_npy(depth)  # the .npy bytes of before, compressed
        assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == bytes(4)  # gzip, no name, mtime 0
        assert data == codec.encode_depth(depth.copy()) == codec.encode_depth(np.asfortranarray(depth))
    zeros = np.zeros((512, 512), np.float32)
    assert len(codec.encode_depth(zeros)) < len(codec.encode_npy(zeros)) // 100


def test_depth_of_another_kind_or_torn_bytes_is_a_value_error():
    depth = np.ones((4, 5), np.float32)
    for bad in (depth.astype(np.float64), depth[None], depth.astype(np.float16)):
        with pytest.raises(ValueError, match=r"depth must be a \(H, W\) float32 array"):
            codec.encode_depth(bad)
    data = codec.encode_depth(depth)
    flipped = data[:-8] + bytes([data[-8] ^ 1]) + data[-7:]  # the CRC of the data
    for torn in (b"", codec.encode_npy(depth), data[: len(data) // 2], flipped):
        with pytest.raises(ValueError, match="depth.npy.gz cannot be decompressed"):
            codec.decode_depth(torn)
    with pytest.raises(ValueError, match=r"must hold a \(H, W\) float32 array, got float64"):
        codec.decode_depth(gzip.compress(codec.encode_npy(depth.astype(np.float64))))
