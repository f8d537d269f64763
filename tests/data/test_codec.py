"""The PNG writer of the view members: standard PNGs that cv2 and PIL read back exactly, the same
bytes for the same pixels."""

import io

import numpy as np
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
