"""What the training stage modules share: a training stage's run folder resumes a killed run and
starts a finished, reconfigured or re-coded one afresh, and never empties a folder it did not make."""

import pytest

from pipelines import train


def test_run_dir_resumes_only_an_unfinished_run_of_the_same_config_and_code(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "MODELS", tmp_path)
    out = train.run_dir("nirne_stage1", {"steps": 10}, code="c1")
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"step 5")

    assert (
        train.run_dir("nirne_stage1", {"steps": 10}, code="c1") == out and ckpt.read_bytes() == b"step 5"
    )  # killed: resume

    (out / "model.pt").write_bytes(b"done")  # finished: DVC reruns it only for changed code or data
    train.run_dir("nirne_stage1", {"steps": 10}, code="c1")
    assert not ckpt.exists() and not (out / "model.pt").exists()

    for config, code in (({"steps": 20}, "c1"), ({"steps": 20}, "c2")):  # another config, other code: a new run
        ckpt.parent.mkdir(exist_ok=True)
        ckpt.write_bytes(b"step 5")
        train.run_dir("nirne_stage1", config, code=code)
        assert not ckpt.exists() and (out / "run_config.json").exists()

    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"did not write \(notes.txt\)"):
        train.run_dir("nirne_stage1", {"steps": 30}, code="c2")
    assert (out / "notes.txt").read_text() == "mine" and (out / "run_config.json").exists()
