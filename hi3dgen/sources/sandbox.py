"""Loading one untrusted mesh file in a child process with a time and a memory limit.

Real-world files make loaders hang (a 300-deep glTF node chain keeps trimesh busy for minutes),
exhaust memory or crash. Each file is read by a child forked from a forkserver that has trimesh
imported already (a start costs milliseconds, not the half second of a fresh interpreter); the
child's address space is capped and it is killed when its time is up, so the worker that asked
lives on and records why. This module imports only the standard library at the top, so the CLI
can read `Limits` cheaply; trimesh is imported in the forkserver and the child.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import resource
import signal
import struct
import traceback

FORMATS = ("glb", "gltf", "obj", "ply", "stl", "off")
STARTUP_SECONDS = 300.0  # for the forkserver to start and fork the child
PRELOAD = ["hi3dgen.assets.mesh", "hi3dgen.sources.gltf", "psutil", __name__]
MAX_SECONDS = 86_400.0  # a day: more is a typo, and larger numbers overflow the CPU rlimit


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-file limits. The defaults let two workers run side by side on a 2-core, 24 GB machine."""

    seconds: float = 120.0  # wall time to load, merge, normalize and write one file
    memory_mb: int = 4096  # address space the child may add to what it starts with
    max_file_mb: float = 512.0  # larger files are rejected unread (`too_large`)
    max_faces: int = 5_000_000  # faces of all instances, checked before merging (`too_many_faces`)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"limit {field.name} must be a positive finite number, not {value}")
        if self.seconds > MAX_SECONDS:
            raise ValueError(f"limit seconds must be at most {MAX_SECONDS:g}, not {self.seconds:g}")


def load_isolated(path: str, file_type: str, out_glb: str, limits: Limits, up_axis: str = "y"):
    """Load `path`, merge it into one mesh, normalize it and write it to `out_glb` (atomically), in
    a child process. Returns `{"faces", "vertices", "sha256"}`, or `{"reason": "code: detail"}`."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # takes effect when the forkserver starts
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, path, file_type, out_glb, limits, up_axis), daemon=True)
    child.start()
    send.close()
    result, timed_out = None, False
    try:
        # The time limit runs from the child's first word, not from the request: a forkserver that
        # is still starting (importing trimesh on a loaded machine) is no fault of the file.
        if recv.poll(STARTUP_SECONDS):
            recv.recv()
            if recv.poll(limits.seconds):
                result = recv.recv()
            else:
                timed_out = True
    except EOFError:  # the child died before it answered
        pass
    finally:
        recv.close()
    child.join(timeout=0 if timed_out else 5)
    if child.is_alive():
        child.kill()
        child.join()
    if result is not None:
        return result
    if timed_out or child.exitcode == -signal.SIGXCPU:
        return {"reason": f"timeout: not done within {limits.seconds:g} s"}
    if child.exitcode < 0:
        name = signal.Signals(-child.exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return {"reason": f"crashed: the loader died with {name}{hint}"}
    return {"reason": f"crashed: the loader exited with code {child.exitcode} and no answer"}


def _child(conn, path, file_type, out_glb, limits: Limits, up_axis):
    conn.send("started")
    import psutil

    cap = psutil.Process().memory_info().vms + limits.memory_mb * 2**20  # the cap counts from here
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # A backstop if the parent dies and can no longer kill this child on time.
    cpu = math.ceil(limits.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    from hi3dgen.assets.mesh import AssetError

    try:
        result = _load_and_write(path, file_type, out_glb, limits.max_faces, up_axis)
    except AssetError as exc:
        result = {"reason": str(exc)}
    except MemoryError:
        result = {"reason": f"memory_limit: needs more than {limits.memory_mb} MB"}
    except Exception as exc:
        result = {"reason": _classify(exc, file_type)}
    conn.send(result)
    conn.close()


def _classify(exc: Exception, file_type: str) -> str:
    """A reason code for an exception a loader raised on a malformed file; one without a message
    (a bare `assert` of the loader) is named by the line that raised it."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    if not str(exc).strip() and exc.__traceback__ is not None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = frame.filename.split("site-packages/")[-1]
        text = f"{type(exc).__name__} at {where}:{frame.lineno} ({(frame.line or '').strip()[:200]})"
    if file_type not in ("glb", "gltf") and (isinstance(exc, IndexError) or "index" in str(exc).lower()):
        return f"bad_indices: {text}"  # face lists pointing past the vertex list
    if isinstance(exc, FileNotFoundError):
        return f"missing_buffer: {text}"
    return f"invalid_file: {text}"


def _check_stl(path: str) -> None:
    """A binary STL's triangle count must match its size: trimesh otherwise reads it as ASCII and
    finds no geometry. ASCII STL is left to trimesh."""
    from hi3dgen.assets.mesh import AssetError

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    count = struct.unpack_from("<I", head, 80)[0] if size >= 84 else None
    if count is not None and 84 + 50 * count == size:
        return
    if head.lstrip()[:5].lower() == b"solid" and b"\0" not in head:
        return
    if count is None:
        raise AssetError("invalid_file", f"{size} bytes: neither ASCII STL nor a binary STL's 84-byte header")
    raise AssetError(
        "invalid_file",
        f"the binary STL header claims {count} triangles ({84 + 50 * count} bytes), the file has {size} bytes",
    )


def _load_and_write(path, file_type, out_glb, max_faces, up_axis) -> dict:
    import trimesh

    from hi3dgen.assets import mesh as am
    from hi3dgen.sources import gltf

    if file_type in ("glb", "gltf"):
        gltf.check(path, binary=file_type == "glb")
    elif file_type == "stl":
        _check_stl(path)
    loaded = trimesh.load(path, file_type=file_type, process=False)
    if isinstance(loaded, trimesh.Scene):
        parts = [
            (loaded.geometry[name], len(nodes))
            for name, nodes in loaded.graph.geometry_nodes.items()
            if name in loaded.geometry
        ]
    else:
        parts = [(loaded, 1)]
    if not parts:
        raise am.AssetError("empty", "no geometry in the file")
    faces = sum(len(g.faces) * n for g, n in parts if isinstance(g, trimesh.Trimesh))
    with_points = (trimesh.Trimesh, trimesh.PointCloud)  # not paths: lines are no point cloud
    points = sum(len(g.vertices) * n for g, n in parts if isinstance(g, with_points))
    if faces > max_faces:
        raise am.AssetError("too_many_faces", f"{faces} faces (limit {max_faces})")
    if faces == 0 and points:
        raise am.AssetError("point_cloud", f"{points} points and no faces")
    merged = am.as_mesh(loaded)
    if up_axis == "z":
        merged.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    normalized = am.normalize(merged)
    sha256 = am.save_glb(normalized, out_glb)
    return {"faces": len(normalized.faces), "vertices": len(normalized.vertices), "sha256": sha256}
