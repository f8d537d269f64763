"""The git tags of every run: a change to the code makes a run dirty, the run's own records
(dvc.lock, metrics/, rewritten by every run and committed with it) do not."""

import subprocess

from hi3dgen.tracking import git_tags


def test_dirty_means_changed_code_not_the_run_records(tmp_path):
    (tmp_path / "metrics").mkdir()
    for name in ("code.py", "dvc.lock", "metrics/norld.json"):
        (tmp_path / name).write_text("1\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run 1"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "dvc.lock").write_text("2\n")
    (tmp_path / "metrics" / "norld.json").write_text("2\n")
    assert git_tags(tmp_path) == {"git.commit": head, "git.dirty": "false"}
    (tmp_path / "code.py").write_text("2\n")
    assert git_tags(tmp_path)["git.dirty"] == "true"
