"""The layering of DESIGN.md holds: no module imports one of a higher layer (the contract is
`[tool.importlinter]` in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_imports_a_higher_layer():
    r = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, f"an import runs up the layers:\n{r.stdout[-3000:]}{r.stderr[-2000:]}"
    assert "1 kept, 0 broken" in r.stdout
