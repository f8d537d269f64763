"""The Khronos glTF validator (npm `gltf-validator`, put into .venv by `make validator`) on the GLB
files a test wrote: every GLB the project writes must be valid glTF 2.0, free of warnings too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VALIDATOR = Path(__file__).resolve().parents[1] / ".venv" / "node_modules" / "gltf-validator"
SCRIPT = """
const [validator, ...files] = process.argv.slice(1);
const { validateBytes } = require(validator);
const fs = require("fs");
(async () => {
  const reports = {};
  for (const file of files) reports[file] = (await validateBytes(new Uint8Array(fs.readFileSync(file)))).issues;
  console.log(JSON.stringify(reports));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def assert_valid(paths: list[Path]) -> None:
    """Each GLB has 0 errors and 0 warnings (skips when node or the validator is missing)."""
    node = shutil.which("node")
    if node is None or not VALIDATOR.is_dir():
        pytest.skip("the Khronos glTF validator is not installed: run `make validator` (needs node and npm)")
    assert paths
    r = subprocess.run(
        [node, "-e", SCRIPT, str(VALIDATOR), *map(str, paths)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    reports = json.loads(r.stdout)
    bad = {path: issues["messages"] for path, issues in reports.items() if issues["numErrors"] or issues["numWarnings"]}
    assert len(reports) == len(paths) and not bad, bad
