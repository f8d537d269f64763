"""Tiny 3D files written by the tests: one valid file per format and each kind of messy file."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path

import trimesh

FORMATS = ("glb", "gltf", "obj", "ply", "stl", "off")
PLY_HEADER = (
    "ply\nformat {fmt} 1.0\nelement vertex {nv}\nproperty float x\nproperty float y\n"
    "property float z\n{faces}end_header\n"
)
PLY_FACES = "element face {nf}\nproperty list uchar int vertex_indices\n"


def box() -> trimesh.Trimesh:
    """Off-centre and not unit-sized, so normalization has something to do."""
    mesh = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    mesh.apply_translation([3.0, 4.0, 5.0])
    return mesh


def write_formats(folder: Path) -> dict[str, Path]:
    """One valid file per supported format (the glTF with an external .bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in FORMATS:
        if ext == "gltf":
            sub = folder / "gltf"
            sub.mkdir()
            for name, data in trimesh.exchange.gltf.export_gltf(trimesh.Scene(box())).items():
                (sub / name).write_bytes(data)
            out[ext] = sub / "model.gltf"
        else:
            out[ext] = folder / f"box.{ext}"
            box().export(out[ext])
    return out


def gltf_doc(scene: trimesh.Scene | None = None) -> dict:
    """A glTF document with embedded buffers, to edit into a messy one."""
    files = trimesh.exchange.gltf.export_gltf(scene or trimesh.Scene(box()), embed_buffers=True)
    return json.loads(files["model.gltf"])


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def chain_gltf(path: Path, depth: int) -> Path:
    """A `depth`-deep chain of nodes: valid glTF that keeps trimesh's scene flattening busy for
    minutes at depth 300 (a 200-deep chain takes ~40 s)."""
    doc = gltf_doc()
    step = {"mesh": 0, "translation": [0.01, 0, 0]}
    doc["nodes"] = [{"children": [i + 1], **step} for i in range(depth - 1)] + [step]
    doc["scenes"] = [{"nodes": [0]}]
    return write_json(path, doc)


def instances_gltf(path: Path, count: int) -> Path:
    """`count` instances of a 20,480-face sphere: a small file whose merge needs 0.7 MB for each."""
    doc = gltf_doc(trimesh.Scene(trimesh.creation.icosphere(subdivisions=5)))
    doc["nodes"] = [{"mesh": 0, "translation": [i, 0, 0]} for i in range(count)]
    doc["scenes"] = [{"nodes": list(range(count))}]
    return write_json(path, doc)


def write_messy(folder: Path) -> dict[str, str]:
    """Messy files in `folder`; returns file name -> the reason code each must get."""
    folder.mkdir(parents=True, exist_ok=True)
    tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
    (folder / "nan.obj").write_text(tri.replace("v 0 1 0", "v nan 1 0") + "f 1 2 3\n")
    (folder / "index.obj").write_text(tri + "f 1 2 9\n")
    (folder / "index.ply").write_text(
        PLY_HEADER.format(fmt="ascii", nv=3, faces=PLY_FACES.format(nf=1)) + "0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n"
    )
    (folder / "points.ply").write_text(PLY_HEADER.format(fmt="ascii", nv=3, faces="") + "0 0 0\n1 0 0\n0 1 0\n")
    (folder / "huge.ply").write_bytes(
        PLY_HEADER.format(fmt="binary_little_endian", nv=10**12, faces=PLY_FACES.format(nf=1)).encode() + bytes(64)
    )
    (folder / "empty.stl").write_bytes(b"")
    (folder / "notes.txt").write_text("not a mesh")
    (folder / "broken.gltf").write_text('{"asset": {"version": "2.0"}, "nodes": [')
    write_json(folder / "schema.gltf", {"asset": {"version": "2.0"}, "meshes": "oops"})
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(box()))
    (folder / "truncated.glb").write_bytes(glb[: len(glb) // 2])
    (folder / "garbage.glb").write_bytes(b"glTF" + struct.pack("<II", 2, 28) + bytes(16))
    doc = gltf_doc()
    doc["nodes"][0]["children"] = [0]
    write_json(folder / "recursive.gltf", doc)
    doc = gltf_doc()
    doc["buffers"] = [{"uri": "gone.bin", "byteLength": b["byteLength"]} for b in doc["buffers"]]
    write_json(folder / "missing.gltf", doc)
    instances_gltf(folder / "instances.gltf", 2_000)
    (folder / "big.obj").write_text(tri + "f 1 2 3\n" + "# padding\n" * 200_000)
    box().export(folder / "good.obj")
    return {
        "nan.obj": "non_finite_vertices",
        "index.obj": "bad_indices",
        "index.ply": "bad_indices",
        "points.ply": "point_cloud",
        "huge.ply": "invalid_file",
        "empty.stl": "empty",
        "notes.txt": "unsupported_format",
        "broken.gltf": "invalid_file",
        "schema.gltf": "invalid_file",
        "truncated.glb": "invalid_file",
        "garbage.glb": "invalid_file",
        "recursive.gltf": "recursive_scene",
        "missing.gltf": "missing_buffer",
        "instances.gltf": "too_many_faces",
        "big.obj": "too_large",  # 2 MB against a 1 MB cap
        "good.obj": None,
    }


def write_links(folder: Path) -> dict[str, str | None]:
    """Links as users and caches lay them out; returns each input (relative to `folder`) -> the
    reason code it must get (None: accepted)."""
    for sub in ("real", "other", "snap", "blobs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    box().export(folder / "real" / "a.obj")
    box().export(folder / "other" / "a.obj")  # the same name in another folder
    (folder / "real" / "loop").symlink_to("..")  # a folder link back to its parent: a loop
    (folder / "linked").symlink_to("real")  # a linked folder is walked like a real one
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(box()))
    blob = hashlib.sha256(glb).hexdigest()
    (folder / "blobs" / blob).write_bytes(glb)  # a content-addressed cache: blobs have no suffix,
    (folder / "snap" / "model.glb").symlink_to(f"../blobs/{blob}")  # the links have the names
    (folder / "cycle1.obj").symlink_to("cycle2.obj")
    (folder / "cycle2.obj").symlink_to("cycle1.obj")
    (folder / "gone.obj").symlink_to("nowhere.obj")
    return {
        "real/a.obj": None,
        "other/a.obj": None,
        "real/loop": "folder_loop",
        "linked/a.obj": None,
        "linked/loop": "folder_loop",
        f"blobs/{blob}": "unsupported_format",
        "snap/model.glb": None,
        "cycle1.obj": "broken_link",
        "cycle2.obj": "broken_link",
        "gone.obj": "broken_link",
    }


def stl_claiming(path: Path, triangles: int) -> Path:
    """A binary STL whose header claims `triangles` and which holds two."""
    path.write_bytes(bytes(80) + struct.pack("<I", triangles) + bytes(50 * 2))
    return path


def edited_glb(path: Path, edit) -> Path:
    """A GLB of the box whose JSON chunk `edit(doc)` changed (the binary chunk is kept)."""
    glb = trimesh.exchange.gltf.export_glb(trimesh.Scene(box()))
    json_len = struct.unpack_from("<I", glb, 12)[0]
    doc = json.loads(glb[20 : 20 + json_len])
    edit(doc)
    blob = json.dumps(doc).encode()
    blob += b" " * (-len(blob) % 4)
    rest = glb[20 + json_len :]
    path.write_bytes(b"glTF" + struct.pack("<IIII", 2, 20 + len(blob) + len(rest), len(blob), 0x4E4F534A) + blob + rest)
    return path


def huge_view_glb(path: Path) -> Path:
    """A GLB whose first bufferView claims 4 GiB of a 240-byte buffer."""
    return edited_glb(path, lambda doc: doc["bufferViews"][0].update(byteLength=4 * 2**30))


def strided_glb(path: Path) -> Path:
    """A GLB whose vertex positions are a strided accessor a million entries long, far past its
    bufferView: trimesh stops at a bare `assert`."""

    def edit(doc):
        acc = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
        doc["bufferViews"][acc["bufferView"]]["byteStride"] = 12
        acc["count"] = 10**6

    return edited_glb(path, edit)


def objaverse_cache(base: Path, uids: dict[str, bytes | None], annotations=None) -> Path:
    """A cache laid out like the objaverse package's: the index lists every uid, and those with
    bytes have their GLB in it. Returns the versioned folder."""
    root = base / "hf-objaverse-v1"
    paths = {uid: f"glbs/000-000/{uid}.glb" for uid in uids}
    (root / "glbs" / "000-000").mkdir(parents=True)
    with gzip.open(root / "object-paths.json.gz", "wt") as f:
        json.dump(paths, f)
    for uid, data in uids.items():
        if data is not None:
            (root / paths[uid]).write_bytes(data)
    if annotations is not None:
        (root / "metadata").mkdir()
        with gzip.open(root / "metadata" / "000-000.json.gz", "wt") as f:
            json.dump(annotations, f)
    return root
