"""Which project code made an output: the project modules a module imports, transitively.

Every record of "done" (a stage journal row, a cache entry, a finished training run) is keyed by
`code_digest` of the modules its work runs, and each DVC stage's deps are `stage_deps` of its
command's module (and the preset files its run configs read), so an edit redoes exactly what
imports the edited file.

Imports are read from the source (`ast`), not by importing it: every `import` and `from ... import`
anywhere in a file (functions' lazy imports too) counts, and so does a string constant that names a
project module (modules loaded by name, such as the render backends), so the closure is complete
without running the code. A module's parent packages count too: importing `a.b.c` runs `a/__init__.py`
and `a/b/__init__.py`.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

from hi3dgen import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hi3dgen", "pipelines", "flows")  # the project's top-level packages
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of a module or package inside the project folder (the library, the stages,
    the flows, or a test's own module), or None when `name` is not one."""
    parts = name.split(".")
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@functools.lru_cache(maxsize=None)
def direct_imports(path: Path, root: Path = ROOT) -> frozenset[str]:
    """Project modules that the file at `path` imports or names (see the module docstring)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_of(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            names.add(node.value)
    found = set()
    for name in names:
        for candidate in _with_parents(name):
            if module_file(candidate, root) is not None:
                found.add(candidate)
    found.discard(me)
    return frozenset(found)


def closure(modules: tuple[str, ...] | list[str], root: Path = ROOT) -> list[Path]:
    """The files of `modules` and of every project module they import, transitively, sorted."""
    todo = [m for name in modules for m in _with_parents(name)]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            raise ValueError(f"{name!r} is not a module inside {root}")
        seen[name] = path
        todo.extend(direct_imports(path, root))
    return sorted(set(seen.values()))


@functools.lru_cache(maxsize=None)
def _digest(modules: tuple[str, ...], root: Path) -> str:
    h = hashlib.sha256()
    for path in closure(modules, root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_digest(*modules: str) -> str:
    """A digest of the source of `modules` and of everything of the project they import."""
    return _digest(tuple(sorted(modules)), ROOT)


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of the libraries whose output a stage's work depends on (for its config
    fingerprint, beside the code digest)."""
    out = {}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def code_key(module: str, libraries: tuple[str, ...] = ()) -> str:
    """The key of a result that `module`'s code (and the project code it imports) computed with
    these libraries: a stage may reuse a result found under the same key for the same input
    instead of computing it again."""
    return mf.fingerprint({"code": code_digest(module), "libraries": versions(*libraries)})


def function_module(fn) -> str:
    """The module that defines `fn` (a function, or a functools.partial of one)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn.__module__


# ---- DVC stage deps ---------------------------------------------------------------------------
def stage_module(cmd: str) -> str | None:
    """The module a `dvc.yaml` command runs with `python -m MODULE`, if it is one of the project's."""
    m = re.search(r"-m\s+([\w.]+)", cmd)
    return m.group(1) if m and module_file(m.group(1)) is not None else None


def preset_dirs(path: Path) -> list[str]:
    """The preset folders a module's run configs read (`hi3dgen.config.build`): `presets/X` for
    each class attribute `COMPONENT = "X"` in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "COMPONENT" and isinstance(node.value, ast.Constant):
            found.append(f"presets/{node.value.value}")
    return found


def stage_deps(cmd: str, root: Path = ROOT) -> list[str]:
    """The project files a stage command imports and the preset folders they read (relative
    paths), sorted."""
    module = stage_module(cmd)
    if module is None:
        return []
    files = closure([module], root)
    return [p.relative_to(root).as_posix() for p in files] + sorted({d for p in files for d in preset_dirs(p)})


def _is_code(dep: str, root: Path) -> bool:
    return dep.endswith(".py") or (root / dep / "__init__.py").exists() or dep.split("/")[0] in (*PACKAGES, "presets")


def sync_dvc_deps(dvc_yaml: Path, write: bool) -> dict[str, tuple[list[str], list[str]]]:
    """Compare each stage's code deps in `dvc_yaml` with its command's imports; returns
    `stage -> (missing, extra)` for the stages that differ, and with `write` puts the right list
    in place (data deps and comments kept)."""
    from ruamel.yaml import YAML

    y = YAML()
    y.width = 120
    doc = y.load(dvc_yaml.read_text())
    root = dvc_yaml.resolve().parent
    drift = {}
    for name, stage in doc["stages"].items():
        if stage_module(stage["cmd"]) is None:
            continue
        deps = list(stage.get("deps") or [])
        code = [d for d in deps if _is_code(d, root)]
        want = stage_deps(stage["cmd"], root)
        if code != want:
            drift[name] = (sorted(set(want) - set(code)), sorted(set(code) - set(want)))
            stage["deps"] = [d for d in deps if not _is_code(d, root)] + want
    if drift and write:
        with open(dvc_yaml, "w") as f:
            y.dump(doc, f)
    return drift


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m hi3dgen.lineage", description="check or rewrite dvc.yaml's code deps from the stages' imports"
    )
    p.add_argument("--write", action="store_true", help="rewrite dvc.yaml where it differs")
    p.add_argument("--dvc-yaml", default=str(ROOT / "dvc.yaml"))
    args = p.parse_args(argv)
    drift = sync_dvc_deps(Path(args.dvc_yaml), args.write)
    for stage, (missing, extra) in drift.items():
        print(f"{stage}: missing {missing or '-'}; not imported {extra or '-'}")
    if drift and not args.write:
        print("dvc.yaml deps differ from the imports: run `python -m hi3dgen.lineage --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
