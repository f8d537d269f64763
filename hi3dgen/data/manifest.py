"""Manifests: one JSON row per input of a stage, so nothing vanishes silently.

While a stage runs, each finished item is appended to `OUT/.journal.jsonl` (flushed and fsynced),
tagged with the stage's config fingerprint and the item's own fingerprint (its input, e.g. the
sha256 of the asset). A rerun trusts only rows with both fingerprints unchanged whose line is complete, so a killed run resumes where it stopped and a changed config redoes the work. At
the end the rows are written, sorted by `asset_id`, to `OUT/manifest.jsonl` (atomically), which is
deterministic: it holds no timings.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from pathlib import Path

from hi3dgen import io

MANIFEST = "manifest.jsonl"
JOURNAL = ".journal.jsonl"
STATUSES = ("accepted", "rejected")
REQUIRED = ("asset_id", "source", "status")


def fingerprint(config) -> str:
    """A short stable hash of a JSON-serializable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSON-lines file; a torn last line (a killed writer) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_manifest(out_dir: str | os.PathLike) -> list[dict]:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes {out_dir} first")
    return read_jsonl(path)


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
    """Append-only log of finished items of one stage run."""

    def __init__(self, out_dir: str | os.PathLike, config_fingerprint: str):
        self.path = Path(out_dir) / JOURNAL
        self.fp = config_fingerprint
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, tuple[str, dict]]:
        """`asset_id -> (item fingerprint, row)` finished under the same config (last one wins)."""
        return {
            r["asset_id"]: (r.get("item"), r["row"])
            for r in read_jsonl(self.path)
            if r.get("fp") == self.fp
        }

    def append(self, row: dict, item_fp: str) -> None:
        entry = {"asset_id": row["asset_id"], "fp": self.fp, "item": item_fp, "row": row}
        line = json.dumps(entry, sort_keys=True)
        with open(self.path, "a") as f:
            # A torn earlier line (killed writer) must not swallow this one.
            if f.tell() and not self.path.read_bytes().endswith(b"\n"):
                f.write("\n")
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


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
    reasons = collections.Counter(
        r["reason"].split(":")[0] for r in rows if r["status"] == "rejected"
    )
    return {
        "total": len(rows),
        "accepted": sum(r["status"] == "accepted" for r in rows),
        "rejected": sum(r["status"] == "rejected" for r in rows),
        "rejected_by_reason": dict(sorted(reasons.items())),
    }
