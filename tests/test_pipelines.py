"""What the stage modules share: a training stage's run folder resumes a killed run and starts a
finished or reconfigured one afresh."""

from pipelines import common


def test_run_dir_resumes_only_an_unfinished_run_of_the_same_config(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "MODELS", tmp_path)
    out = common.run_dir("nirne_stage1", {"steps": 10})
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"step 5")

    assert common.run_dir("nirne_stage1", {"steps": 10}) == out and ckpt.read_bytes() == b"step 5"  # killed: resume

    (out / "model.pt").write_bytes(b"done")  # finished: DVC reruns it only for changed code or data
    common.run_dir("nirne_stage1", {"steps": 10})
    assert not ckpt.exists() and not (out / "model.pt").exists()

    ckpt.parent.mkdir()
    ckpt.write_bytes(b"step 5")
    common.run_dir("nirne_stage1", {"steps": 20})  # another config: a new run
    assert not ckpt.exists() and (out / "run_config.json").exists()
