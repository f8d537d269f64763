"""Lineage: which project code an output depends on, from the imports of the source."""

import textwrap

import pytest
import yaml

from hi3dgen import lineage

DATA_STAGES = ("synthesize", "ingest", "filter", "render", "shard")


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def tree(tmp_path):
    """A small project: a stage module with a lazy import and a module named by a string."""
    _write(tmp_path, "hi3dgen/__init__.py", "")
    _write(
        tmp_path,
        "hi3dgen/stage.py",
        """
        from hi3dgen import codec
        BACKENDS = {"a": "hi3dgen.backend_a"}
        def work():
            from .helpers import thing
            return thing
    """,
    )
    _write(tmp_path, "hi3dgen/codec.py", "import json\n")
    _write(tmp_path, "hi3dgen/helpers.py", "thing = 1\n")
    _write(tmp_path, "hi3dgen/backend_a.py", "")
    _write(tmp_path, "hi3dgen/unrelated.py", "import hi3dgen.codec\n")
    return tmp_path


def test_closure_follows_lazy_relative_and_named_imports_and_parent_packages(tree):
    files = [p.relative_to(tree).as_posix() for p in lineage.closure(["hi3dgen.stage"], tree)]
    assert files == [
        "hi3dgen/__init__.py",
        "hi3dgen/backend_a.py",
        "hi3dgen/codec.py",
        "hi3dgen/helpers.py",
        "hi3dgen/stage.py",
    ]


def test_digest_changes_with_imported_code_only(tree):
    before = lineage._digest(("hi3dgen.stage",), tree)
    (tree / "hi3dgen/unrelated.py").write_text("x = 2\n")
    assert lineage._digest.__wrapped__(("hi3dgen.stage",), tree) == before
    (tree / "hi3dgen/helpers.py").write_text("thing = 2\n")
    lineage.direct_imports.cache_clear()
    assert lineage._digest.__wrapped__(("hi3dgen.stage",), tree) != before


def test_dvc_yaml_deps_are_the_stages_imports():
    drift = lineage.sync_dvc_deps(lineage.ROOT / "dvc.yaml", write=False)
    assert drift == {}, (
        f"dvc.yaml deps differ from the imports (stage: (missing, extra)): {drift}; "
        "run `python -m hi3dgen.lineage --write`"
    )


def test_no_data_stage_depends_on_training_code_and_render_depends_on_the_codec():
    stages = yaml.safe_load((lineage.ROOT / "dvc.yaml").read_text())["stages"]
    for name in DATA_STAGES:
        deps = stages[name]["deps"]
        assert not [d for d in deps if d.startswith(("hi3dgen/training/", "hi3dgen/models/"))], name
    for name in ("render", "shard"):
        assert "hi3dgen/data/codec.py" in stages[name]["deps"]


def test_drift_is_named_and_rewritten(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    stages = yaml.safe_load((lineage.ROOT / "dvc.yaml").read_text())
    stages["stages"]["render"]["deps"].remove("hi3dgen/data/codec.py")
    stages["stages"]["render"]["deps"].append("hi3dgen/training/trainer.py")
    dvc_yaml.write_text(yaml.safe_dump(stages, sort_keys=False))
    (tmp_path / "hi3dgen").symlink_to(lineage.ROOT / "hi3dgen")
    (tmp_path / "pipelines").symlink_to(lineage.ROOT / "pipelines")
    assert lineage.sync_dvc_deps(dvc_yaml, write=True) == {
        "render": (["hi3dgen/data/codec.py"], ["hi3dgen/training/trainer.py"])
    }
    assert lineage.sync_dvc_deps(dvc_yaml, write=False) == {}
