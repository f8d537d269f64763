"""Encoding of the view-sample members (DESIGN.md "View sample"), and their lossless decoding.

PNGs are written here (one numpy filter for the whole image, zlib level 1): 2.5-3x faster than
cv2.imencode at level 1, whose per-row adaptive filter choice is most of its time, and byte for byte
a function of the pixels and zlib alone (not of the OpenCV build). They are decoded by cv2 (PIL
cannot read 16-bit RGB exactly; webdataset's decoders turn them into 8-bit), so both directions live
here and nowhere else.

Depth (`depth.npy.gz`) is the .npy of the float32 array, gzip-compressed with a zero mtime: the bytes
are a function of the array and zlib alone, and decoding gives the array back bit for bit.
"""

from __future__ import annotations

import gzip
import io as _io
import json
import struct
import zlib

import cv2
import numpy as np

PNG_LEVEL = 1  # zlib level: 9 is several times slower for a few percent fewer bytes
DEPTH_LEVEL = 1  # gzip level of depth.npy.gz (BENCHMARKS.md, bench/depth.py)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # channels -> grey, RGB, RGBA
FILTER_NONE, FILTER_UP = 0, 2  # measured at 512²: none is smallest for 16-bit normals, up for 8-bit


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(img: np.ndarray, row_filter: int) -> bytes:
    """A PNG of a uint8 or uint16 (H, W) or (H, W, C) array in RGB(A) order, every row with the same
    filter (FILTER_NONE or FILTER_UP)."""
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        raise ValueError(f"cannot write a PNG of an array of shape {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    rows = np.ascontiguousarray(img, img.dtype.newbyteorder(">")).reshape(h, -1).view(np.uint8)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = row_filter
    if row_filter == FILTER_UP:  # each byte minus the one above it, modulo 256
        raw[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    else:
        raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", w, h, 8 * img.dtype.itemsize, PNG_COLOUR_TYPE[channels], 0, 0, 0)
    idat = zlib.compress(raw, PNG_LEVEL)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _unpng(data: bytes, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ValueError("not a decodable PNG")
    return img


def encode_normal(normal: np.ndarray, mask: np.ndarray) -> bytes:
    """Camera-space unit normals (H, W, 3) -> 16-bit RGB PNG, round((n*0.5+0.5)*65535), 0 outside."""
    q = np.round((np.clip(normal, -1, 1) * 0.5 + 0.5) * 65535).astype(np.uint16)
    q[~mask.astype(bool)] = 0
    return _png(q, FILTER_NONE)


def decode_normal_raw(data: bytes) -> np.ndarray:
    """The stored uint16 (H, W, 3) RGB array, bit-exact."""
    img = _unpng(data, cv2.IMREAD_UNCHANGED)
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"normal.png must be 16-bit RGB, got {img.dtype} with shape {img.shape}")
    return np.ascontiguousarray(img[..., ::-1])


def normal_from_raw(raw: np.ndarray) -> np.ndarray:
    """uint16 RGB -> float32 normals in [-1, 1] (0 where background)."""
    n = raw.astype(np.float32) / 65535.0 * 2.0 - 1.0
    n[(raw == 0).all(-1)] = 0.0
    return n


def decode_normal(data: bytes) -> np.ndarray:
    return normal_from_raw(decode_normal_raw(data))


def encode_mask(mask: np.ndarray) -> bytes:
    return _png(mask.astype(bool).astype(np.uint8) * 255, FILTER_UP)


def decode_mask(data: bytes) -> np.ndarray:
    return _unpng(data, cv2.IMREAD_GRAYSCALE) > 127


def encode_rgb(rgb: np.ndarray) -> bytes:
    """8-bit sRGB (H, W, 3) uint8, or (H, W, 4) with alpha."""
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    return _png(rgb, FILTER_UP)


def decode_rgb(data: bytes) -> np.ndarray:
    """uint8 (H, W, 3) RGB (alpha dropped) from any 8-bit image file."""
    img = _unpng(data, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[..., ::-1])


def encode_npy(arr: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(_io.BytesIO(data), allow_pickle=False)


def encode_depth(depth: np.ndarray) -> bytes:
    """(H, W) float32 depth -> the gzip-compressed .npy bytes (C order) of `depth.npy.gz`."""
    if depth.dtype != np.float32 or depth.ndim != 2:
        raise ValueError(f"depth must be a (H, W) float32 array, got {depth.dtype} with shape {depth.shape}")
    return gzip.compress(encode_npy(np.ascontiguousarray(depth)), compresslevel=DEPTH_LEVEL, mtime=0)


def decode_depth(data: bytes) -> np.ndarray:
    """The (H, W) float32 depth of `depth.npy.gz`, bit-exact; ValueError if the bytes are not one."""
    try:
        depth = decode_npy(gzip.decompress(data))
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, torn, or a bad checksum
        raise ValueError(f"depth.npy.gz cannot be decompressed ({type(exc).__name__}: {exc})") from None
    if depth.dtype != np.float32 or depth.ndim != 2:
        raise ValueError(f"depth.npy.gz must hold a (H, W) float32 array, got {depth.dtype} with shape {depth.shape}")
    return depth


def encode_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def decode_json(data: bytes):
    return json.loads(data)
