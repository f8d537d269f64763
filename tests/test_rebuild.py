"""bench/rebuild.py: the one-command rebuild runs on CPU at a tiny size, and its digest is a
function of the arguments alone (not of the executor)."""

import json
import tarfile

from bench import rebuild


def test_rebuild_is_deterministic_across_executors_and_shards_every_member(tmp_path, capsys):
    reports = {}
    for kind in ("process", "inline"):
        args = ["--count", "4", "--out", str(tmp_path / kind), "--executor", kind, "--workers", "2"]
        args += ["--backend", "nvdiffrast", "--views", "4", "--resolution", "32"]
        args += ["--json", str(tmp_path / f"{kind}.json")]
        assert rebuild.main(args) == 0
        reports[kind] = json.loads((tmp_path / f"{kind}.json").read_text())
    assert reports["process"]["digest"] == reports["inline"]["digest"]
    report = reports["process"]
    assert report["backend"] == rebuild.pick_backend("nvdiffrast")  # embree without CUDA
    assert report["stages"]["shard"]["assets"] == report["stages"]["filter"]["assets"] >= 3
    assert report["stages"]["render"]["views"] == 4 * report["stages"]["render"]["assets"]
    assert "shards digest " + report["digest"] in capsys.readouterr().out
    with tarfile.open(next((tmp_path / "process" / "shard" / "views").glob("train-*.tar"))) as tar:
        names = tar.getnames()
    key = names[0].split(".")[0]
    members = sorted(n[len(key) + 1 :] for n in names if n.startswith(key + "."))
    assert members == ["camera.json", "depth.npy.gz", "mask.png", "meta.json", "normal.png", "rgb.png"]
