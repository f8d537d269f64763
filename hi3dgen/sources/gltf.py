"""Structural checks of glTF/GLB files before trimesh reads them.

trimesh turns a cyclic node graph, a missing external buffer or broken JSON into unrelated errors
(or silently drops nodes); checking the document first gives the manifest a specific reason.
Only JSON is parsed here: it is cheap and safe on any input.
"""

from __future__ import annotations

import json
import struct
import urllib.parse
from pathlib import Path

from hi3dgen.assets.mesh import AssetError

GLB_MAGIC = b"glTF"
JSON_CHUNK = 0x4E4F534A
BIN_CHUNK = 0x004E4942
LISTS = ("nodes", "meshes", "scenes", "accessors", "bufferViews", "buffers")


def check(path: str | Path, binary: bool) -> None:
    """Raise AssetError (`invalid_file`, `recursive_scene`, `missing_buffer`) for a bad document;
    `binary`: a GLB (else glTF JSON)."""
    path = Path(path)
    if binary:
        doc, bin_len = _glb_json(path)
    else:
        doc, bin_len = _json(path.read_bytes()), None
    _check_document(doc)
    _check_nodes(doc)
    _check_buffers(doc, path.parent, bin_len)


def _glb_json(path: Path) -> tuple[dict, int | None]:
    """The JSON chunk of a GLB, and the length of the complete binary chunk that follows it (None
    if there is none), read without loading the binary chunk."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(20)
        if len(head) < 20 or head[:4] != GLB_MAGIC:
            raise AssetError("invalid_file", "not a GLB (no 'glTF' magic)")
        version, length, json_len, json_type = struct.unpack_from("<IIII", head, 4)
        if version != 2:
            raise AssetError("invalid_file", f"GLB version {version}; only 2 is supported")
        if length != size:
            raise AssetError("invalid_file", f"GLB header says {length} bytes, the file {size}")
        end = 20 + json_len
        if json_type != JSON_CHUNK or end > size:
            raise AssetError("invalid_file", "GLB does not start with a complete JSON chunk")
        blob = f.read(json_len)
        bin_head = f.read(8)
    bin_len = None
    if len(bin_head) == 8:
        length, bin_type = struct.unpack("<II", bin_head)
        if bin_type == BIN_CHUNK and end + 8 + length <= size:
            bin_len = length
    return _json(blob), bin_len


def _json(blob: bytes) -> dict:
    try:
        doc = json.loads(blob)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise AssetError("invalid_file", f"bad glTF JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AssetError("invalid_file", "glTF JSON must be an object")
    return doc


def _check_document(doc: dict) -> None:
    asset = doc.get("asset")
    version = asset.get("version") if isinstance(asset, dict) else None
    if not str(version).startswith("2"):
        raise AssetError("invalid_file", f"asset.version {version!r}; only glTF 2.0 is supported")
    for key in LISTS:
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise AssetError("invalid_file", f"glTF '{key}' must be a list of objects")


def _index(value, count: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
        raise AssetError("invalid_file", f"{what} refers to {value!r}, not in [0, {count})")
    return value


def _check_nodes(doc: dict) -> None:
    """References in range, no node its own ancestor, at most one parent per node (glTF 2.0: the
    node hierarchy is a set of disjoint strict trees)."""
    nodes, n_meshes = doc.get("nodes", []), len(doc.get("meshes", []))
    children = []
    for i, node in enumerate(nodes):
        kids = node.get("children", [])
        if not isinstance(kids, list):
            raise AssetError("invalid_file", f"node {i}: 'children' must be a list")
        children.append([_index(c, len(nodes), f"node {i} child") for c in kids])
        if "mesh" in node:
            _index(node["mesh"], n_meshes, f"node {i} mesh")
    for s, scene in enumerate(doc.get("scenes", [])):
        for root in scene.get("nodes", []):
            _index(root, len(nodes), f"scene {s} node")
    if "scene" in doc:
        _index(doc["scene"], len(doc.get("scenes", [])), "default scene")
    state = [0] * len(nodes)  # 0 unseen, 1 on the current path, 2 finished
    for root in range(len(nodes)):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(children[root]))]
        while stack:
            node, kids = stack[-1]
            child = next(kids, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state[child] == 1:
                raise AssetError("recursive_scene", f"node {child} is its own ancestor")
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(children[child])))
    parents = [0] * len(nodes)
    for kids in children:
        for c in kids:
            parents[c] += 1
            if parents[c] > 1:
                raise AssetError("invalid_file", f"node {c} has more than one parent")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_buffers(doc: dict, folder: Path, bin_len: int | None) -> None:
    """Every buffer is there and holds the bytes it claims; every bufferView lies inside its
    buffer (trimesh only asserts these, with no message)."""
    sizes = []
    for i, buf in enumerate(doc.get("buffers", [])):
        claimed, uri = buf.get("byteLength"), buf.get("uri")
        if not _count(claimed):
            raise AssetError("invalid_file", f"buffer {i}: byteLength {claimed!r} is no byte count")
        if uri is None:
            if not (i == 0 and bin_len is not None):
                raise AssetError("missing_buffer", f"buffer {i} has no uri and no GLB binary chunk")
            held, where = bin_len, "the GLB binary chunk"
        elif not isinstance(uri, str):
            raise AssetError("invalid_file", f"buffer {i}: uri must be a string")
        elif uri.startswith("data:"):
            held, where = _data_uri_bytes(uri), "its data URI"
        elif "://" in uri:
            raise AssetError("missing_buffer", f"buffer {i} is remote ({uri[:80]}), not fetched")
        else:
            file = folder / urllib.parse.unquote(uri)
            if not file.is_file():
                raise AssetError("missing_buffer", f"buffer {i}: '{uri}' not found beside the file")
            held, where = file.stat().st_size, f"'{uri}'"
        if claimed > held:
            raise AssetError("invalid_file", f"buffer {i} claims {claimed} bytes, {where} holds {held}")
        sizes.append(claimed)
    for i, view in enumerate(doc.get("bufferViews", [])):
        b = _index(view.get("buffer"), len(sizes), f"bufferView {i} buffer")
        offset, length = view.get("byteOffset", 0), view.get("byteLength")
        if not (_count(offset) and _count(length)):
            raise AssetError(
                "invalid_file", f"bufferView {i}: byteOffset {offset!r} and byteLength {length!r} must be byte counts"
            )
        if offset + length > sizes[b]:
            raise AssetError(
                "invalid_file",
                f"bufferView {i} spans bytes {offset} to {offset + length} of buffer {b}, which has {sizes[b]}",
            )


def _data_uri_bytes(uri: str) -> int:
    """The length of the data a `data:` URI holds, without decoding base64."""
    head, _, payload = uri.partition(",")
    if head.endswith(";base64"):
        return len(payload.rstrip("=")) * 3 // 4
    return len(urllib.parse.unquote_to_bytes(payload))
