"""Crash-safe file writing, and the rule that the tool deletes only what it wrote.

Everything is written to a temporary name (`<name>.hi3dgen-tmp-<random>`) and renamed into place:
a `kill -9` at any moment leaves the old file, the new file, or a leftover of that exact pattern
that `remove_temp_files` deletes and no reader ever trusts.

A stage's output folder is claimed (`claim_dir`) before the stage touches it: a folder that
overlaps the stage's input, belongs to another stage, or holds a file the stage cannot account for
as its own is refused with a message, so a stage never deletes a user's file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

TMP_MARK = ".hi3dgen-tmp-"
_TMP_NAME = re.compile(r"^.+" + re.escape(TMP_MARK) + r"[A-Za-z0-9_]{8}$")  # mkstemp/mkdtemp's 8 characters
OWNER = ".hi3dgen-owner"  # marks a folder as one stage's output
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + TMP_MARK, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; others (training users) must read it
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def nan_to_none(values: dict) -> dict:
    """A result's NaN floats as None: JSON has no NaN, and a missing figure is not a number."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory beside `path`; on success it replaces `path` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + TMP_MARK, dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_temp(path: str | os.PathLike) -> bool:
    """Whether a path lies in or is a leftover of an interrupted write of this module."""
    return any(_TMP_NAME.match(part) for part in Path(path).parts)


def remove_temp_files(root: str | os.PathLike) -> int:
    """Delete leftovers of this module's interrupted writes under `root` (nothing else); returns
    how many were removed."""
    removed = 0
    root = Path(root)
    if not root.exists():
        return 0
    for p in sorted(root.rglob(f"*{TMP_MARK}*"), reverse=True):
        if not _TMP_NAME.match(p.name):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    return removed


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def claim_dir(
    out_dir: str | os.PathLike, owner: str, ours: Callable[[str], bool], inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Make `out_dir` the output folder of stage `owner`, or raise ValueError before anything in it
    is touched: when it overlaps one of `inputs`, when another stage owns it, or when it holds a
    file that `ours(relative posix path)` does not claim (leftovers of this module's interrupted
    writes are always the stage's). Returns the resolved folder."""
    out = Path(out_dir).resolve()
    for src in inputs:
        if _overlap(out, Path(src).resolve()):
            raise ValueError(
                f"{owner}: the output folder {out} overlaps the input {Path(src).resolve()}: "
                "choose an output folder outside the input and not containing it"
            )
    marker = out / OWNER
    if marker.is_file():
        try:
            found = json.loads(marker.read_text()).get("owner")
        except (ValueError, AttributeError):
            found = None
        if found != owner:
            raise ValueError(
                f"{owner}: {out} is the output folder of {found!r}, not of {owner!r}: "
                "give each stage its own output folder"
            )
    if out.is_dir():
        foreign = sorted(rel for rel in _files(out) if rel != OWNER and not is_temp(rel) and not ours(rel))
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise ValueError(
                f"{owner}: {out} holds files hi3dgen did not write ({', '.join(foreign[:5])}{more}); "
                "nothing was changed: choose an empty or new output folder"
            )
    elif out.exists():
        raise ValueError(f"{owner}: the output folder {out} is a file")
    if not marker.is_file():
        write_json(marker, {"owner": owner})
    return out


def _files(root: Path) -> Iterable[str]:
    """Relative posix paths of the files and links under `root` (links are not followed)."""
    for folder, dirs, files in os.walk(root):
        base = Path(folder).relative_to(root)
        for name in files + [d for d in dirs if Path(folder, d).is_symlink()]:
            yield (base / name).as_posix()


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a file or a folder."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
