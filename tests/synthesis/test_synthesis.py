"""DetailVerse synthesis: valid assets from every family, the sharp-edge target, determinism across
counts and executors, resume from the journal, failures as rows, and the CLI."""

import json
import re
import statistics

import numpy as np
import pytest
from manifold3d import Manifold

import hi3dgen_cli as cli
from hi3dgen import manifest as mf
from hi3dgen.assets.mesh import load_glb
from hi3dgen.parallel import ExecutorConfig
from hi3dgen.synthesis import FAMILIES, stats, synthesize
from tests import gltf

INLINE = ExecutorConfig(kind="inline")
CHEAP = ["heat_sink", "tower_block", "medallion"]  # the fastest families, for the plumbing tests
PAPER_MEDIAN_SHARP_EDGES = 14_521


@pytest.fixture(scope="module")
def one_per_family(tmp_path_factory):
    out = tmp_path_factory.mktemp("families")
    return out, synthesize(len(FAMILIES), 0, out, INLINE)


def test_at_least_twelve_families():
    assert len(FAMILIES) >= 12


def test_every_family_gives_a_valid_normalized_asset(one_per_family):
    out, rows = one_per_family
    assert [r["generator"] for r in rows] == list(FAMILIES)
    for r in rows:
        assert r["status"] == "accepted", r
        assert re.fullmatch(r"dv-s0-\d{6}", r["asset_id"])
        assert r["source"] == "detailverse" and r["domain"] == "synthetic"
        assert r["input_path"] == f"synth://{r['generator']}/0/{int(r['asset_id'][-6:])}"
        assert r["params"] and json.loads(json.dumps(r["params"])) == r["params"]
        assert isinstance(r["watertight"], bool)
        mesh = load_glb(out / r["path"])
        assert (len(mesh.faces), len(mesh.vertices)) == (r["faces"], r["vertices"])
        lo, hi = mesh.bounds
        assert np.all(lo >= -0.5 - 1e-6) and np.all(hi <= 0.5 + 1e-6)
        assert np.allclose((lo + hi) / 2, 0, atol=1e-6)
        assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6)
    assert mf.read_manifest(out) == rows


def test_every_family_is_valid_gltf(one_per_family):
    out, rows = one_per_family
    gltf.assert_valid([out / r["path"] for r in rows])


def test_sharp_edge_and_watertight_targets(one_per_family):
    _, rows = one_per_family
    s = stats(rows)
    assert s["median_sharp_edges"] >= PAPER_MEDIAN_SHARP_EDGES
    assert s["median_sharp_edges"] == statistics.median(r["sharp_edges"] for r in rows)
    assert s["watertight_share"] >= 0.9
    assert set(s["families"]) == set(FAMILIES)


def _bytes(out, rows):
    return {r["asset_id"]: (out / r["path"]).read_bytes() for r in rows}


def test_same_seed_and_index_give_identical_bytes_across_counts_and_executors(tmp_path, ray_local):
    small = synthesize(3, 5, tmp_path / "inline", INLINE, CHEAP)
    large = synthesize(5, 5, tmp_path / "ray", ExecutorConfig(kind="ray", max_in_flight=4), CHEAP)
    assert large[:3] == small
    first, more = _bytes(tmp_path / "inline", small), _bytes(tmp_path / "ray", large)
    assert {k: more[k] for k in first} == first
    other_seed = synthesize(1, 6, tmp_path / "other", INLINE, CHEAP)
    assert other_seed[0]["sha256"] != small[0]["sha256"]


def test_rerun_resumes_from_the_journal(tmp_path):
    out = tmp_path / "out"
    first = synthesize(3, 1, out, INLINE, CHEAP)
    journal = out / mf.JOURNAL
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # killed while writing the last row
    lost = json.loads(lines[-1])["asset_id"]
    original = (out / "assets" / f"{lost}.glb").read_bytes()
    (out / "assets" / f"{lost}.glb").unlink()
    kept = {p.name: p.stat().st_ino for p in (out / "assets").iterdir()}

    assert synthesize(3, 1, out, INLINE, CHEAP) == first
    assert (out / "assets" / f"{lost}.glb").read_bytes() == original
    assert {p.name: p.stat().st_ino for p in (out / "assets").iterdir() if p.name in kept} == kept  # not redone
    again = {p.name: p.stat().st_ino for p in (out / "assets").iterdir()}
    assert synthesize(3, 1, out, INLINE, CHEAP) == first
    assert {p.name: p.stat().st_ino for p in (out / "assets").iterdir()} == again


def test_an_accepted_row_whose_file_is_gone_is_redone(tmp_path):
    out = tmp_path / "out"
    first = synthesize(2, 1, out, INLINE, CHEAP)
    victim = out / first[0]["path"]
    original = victim.read_bytes()
    victim.unlink()  # the journal still says done
    assert synthesize(2, 1, out, INLINE, CHEAP) == first
    assert victim.read_bytes() == original


def test_generator_failure_becomes_a_rejected_row(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "heat_sink", lambda params: Manifold())
    rows = synthesize(2, 0, tmp_path, INLINE, ["heat_sink", "tower_block"])
    assert rows[0]["status"] == "rejected" and rows[0]["reason"].startswith("empty_csg")
    assert rows[0]["generator"] == "heat_sink"
    assert rows[1]["status"] == "accepted"
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == [f"{rows[1]['asset_id']}.glb"]


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown DetailVerse families"):
        synthesize(1, 0, tmp_path, INLINE, ["teapot"])


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "synth",
        "--count",
        "2",
        "--seed",
        "3",
        "--out",
        str(out),
        "--families",
        "heat_sink,tower_block",
        "--executor",
        "inline",
    ]
    assert cli.main(argv) == 0
    rows = mf.read_manifest(out)
    assert [r["generator"] for r in rows] == ["heat_sink", "tower_block"]
    assert all((out / r["path"]).exists() for r in rows)
    printed = capsys.readouterr().out
    assert "2 items: 2 accepted" in printed and "median sharp edges" in printed
    assert cli.main(["synth", "--count", "1", "--out", str(out), "--families", "teapot", "--executor", "inline"]) == 2
