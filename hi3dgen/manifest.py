"""Manifests: one JSON row per input of a stage, so nothing vanishes silently.

While a stage runs, each finished item is appended to `OUT/.journal.jsonl`, tagged with the stage's
config fingerprint (its config and the digest of the code its work runs, `hi3dgen.lineage`) and the
item's own fingerprint (its input, e.g. the sha256 of the asset). A rerun trusts only rows with both
fingerprints unchanged, so a killed run resumes where it stopped and a changed config or code redoes
the work. At the end the rows are written, sorted by `asset_id`, to `OUT/manifest.jsonl`
(atomically), which is deterministic: it holds no timings.

A manifest read as a stage's input must be whole: a line that does not parse, or a row that breaks
the contract, is an error naming the file and the line. Only the last line of a journal may be torn
(a writer killed mid-line): the journal drops it when it is opened for appending, so a torn line
never ends up between two whole ones.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import time
from pathlib import Path

from hi3dgen import io

MANIFEST = "manifest.jsonl"
JOURNAL = ".journal.jsonl"
STATUSES = ("accepted", "rejected")
REQUIRED = ("asset_id", "source", "status")
FSYNC_EVERY_S = 1.0  # journal rows reach the disk at least this often (every row reaches the OS at once)


def fingerprint(config) -> str:
    """A short stable hash of a JSON-serializable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def asset_seed(seed: int, asset_id: str) -> int:
    """A per-asset seed that is stable across processes and Python versions (unlike hash()): what
    every stage draws an asset's random choices from (cameras, materials, sample points)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{asset_id}".encode()).digest()[:8], "little")


def read_jsonl(path: str | os.PathLike, torn_tail: bool = False) -> list[dict]:
    """Rows of a JSON-lines file. Any line that is not a JSON object is a ValueError naming the file
    and line, except, with `torn_tail`, a last line without its newline (a killed writer's)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = len(lines) - 1  # index of the text after the last newline ("" for a whole file)
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as exc:
            if torn_tail and i == tail:
                break
            raise ValueError(
                f"{path}:{i + 1}: not a JSON row ({exc}); the file is damaged: rerun the stage that writes it"
            ) from None
        rows.append(row)
    return rows


def read_manifest(out_dir: str | os.PathLike) -> list[dict]:
    """The rows of a stage's manifest, each checked against the contract (errors name the line)."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes {out_dir} first")
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        try:
            check_row(row)
        except ValueError as exc:
            raise ValueError(f"{path}: row {i + 1}: {exc}") from None
    return rows


def check_row(row: dict) -> dict:
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"manifest row lacks {missing}: {row}")
    if row["status"] not in STATUSES:
        raise ValueError(f"manifest row status must be one of {STATUSES}: {row}")
    if row["status"] == "rejected" and not row.get("reason"):
        raise ValueError(f"rejected manifest row needs a reason: {row}")
    return row


class Journal:
    """Append-only log of finished items of one stage run. Appending costs O(1): the file stays
    open, each row is flushed to the OS at once (a killed process loses none) and fsynced at most
    every FSYNC_EVERY_S seconds and on close (a power cut loses at most that much)."""

    def __init__(self, out_dir: str | os.PathLike, config_fingerprint: str):
        self.path = Path(out_dir) / JOURNAL
        self.fp = config_fingerprint
        self._file = None
        self._synced = 0.0

    def rows(self) -> list[dict]:
        """Every whole entry, of any config."""
        return read_jsonl(self.path, torn_tail=True)

    def done(self, rows: list[dict] | None = None) -> dict[str, tuple[str, dict]]:
        """`asset_id -> (item fingerprint, row)` finished under the same config (last one wins), of
        `rows` already read from this journal or else of the file."""
        rows = self.rows() if rows is None else rows
        return {r["asset_id"]: (r.get("item"), r["row"]) for r in rows if r.get("fp") == self.fp}

    def _open(self):
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")
            size = self._file.tell()
            if size:
                with open(self.path, "rb") as f:
                    f.seek(max(0, size - (1 << 16)))  # the tail is enough: a row is far shorter
                    data = f.read()
                if not data.endswith(b"\n"):  # a killed writer's torn line: drop it
                    cut = data.rfind(b"\n")
                    self._file.truncate(size - len(data) + cut + 1 if cut >= 0 else size - len(data))
        return self._file

    def append(self, row: dict, item_fp: str) -> None:
        entry = {"asset_id": row["asset_id"], "fp": self.fp, "item": item_fp, "row": row}
        f = self._open()
        f.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
        f.flush()
        if time.monotonic() - self._synced >= FSYNC_EVERY_S:
            os.fsync(f.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_manifest(out_dir: str | os.PathLike, rows: list[dict]) -> Path:
    rows = sorted((check_row(r) for r in rows), key=lambda r: r["asset_id"])
    ids = [r["asset_id"] for r in rows]
    dupes = [k for k, n in collections.Counter(ids).items() if n > 1]
    if dupes:
        raise ValueError(f"duplicate asset_id in manifest: {dupes[:5]}")
    path = Path(out_dir) / MANIFEST
    io.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return path


def summarize(rows: list[dict]) -> dict:
    """Counts and rejections by reason (the reason's text before the first ':')."""
    reasons = collections.Counter(r["reason"].split(":")[0] for r in rows if r["status"] == "rejected")
    return {
        "total": len(rows),
        "accepted": sum(r["status"] == "accepted" for r in rows),
        "rejected": sum(r["status"] == "rejected" for r in rows),
        "rejected_by_reason": dict(sorted(reasons.items())),
    }
