"""`hi3dgen run` on a fresh copy of the project: one MLflow parent run with a child per stage, a
rerun with nothing changed skips every stage and still names the models to generate with, a
second concurrent run is refused, and two committed runs with one knob changed compare with
`dvc metrics diff` / `dvc params diff`."""

import json
import re
import subprocess

import pytest

from tests import project

pytestmark = pytest.mark.slow


def _client(root):
    from mlflow import MlflowClient

    return MlflowClient(project.env(root)["MLFLOW_TRACKING_URI"])


def _runs(root):
    client = _client(root)
    exp = client.get_experiment_by_name("hi3dgen")
    return client.search_runs([exp.experiment_id], max_results=500)


def _commit(root, message):
    """A run recorded as README says: its params, dvc.lock and metrics committed."""
    subprocess.run(["git", "add", "params.yaml", "dvc.lock", "metrics"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=root, check=True)


STAGES = [
    "synthesize",
    "ingest",
    "filter",
    "render",
    "shard",
    "nirne_stage1",
    "nirne_stage2",
    "eval_nirne",
    "vae",
    "norld",
    "eval_norld",
]
# Ray's fan-out and its kill -9 are tested on the data stages (tests/test_dvc_stages.py); here the
# stages run inline, which saves a Ray start per stage.
TINY_DAG = {
    "executor": {"kind": "inline"},
    "nirne": {"steps1": 8, "steps2": 4},
    "vae": {"overrides": {"trainer.steps": 40}},
    "norld": {"overrides": {"trainer.steps": 6}},
    "eval_norld": {"shapes": 2, "steps": 2, "grid": 24},
}


def _rendered_image(root, path):
    """A rendered view as an RGBA file (alpha = the object's mask), as a user's photo would be."""
    import cv2
    import numpy as np

    view = next((root / "outputs" / "render" / "views").iterdir())
    rgb = cv2.imread(str(view / "000.rgb.png"), cv2.IMREAD_COLOR)
    mask = cv2.imread(str(view / "000.mask.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(path), np.dstack([rgb, np.where(mask > 0, 255, 0).astype(np.uint8)]))
    return path


def test_run_lineage_rerun_generate_and_lock(tmp_path):
    root = project.make(tmp_path, TINY_DAG)
    out = project.run(root, "hi3dgen", "run").stdout
    assert "Where to look" in out
    runs = _runs(root)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["hi3dgen.stage"] for r in children) == sorted(STAGES)
    for r in children:
        assert r.data.tags["git.commit"] != "unknown" and "dvc.lock.outputs" in r.data.tags
    by_stage = {r.data.tags["hi3dgen.stage"]: r for r in children}
    assert {"train/flow_loss", "train/normal_reg_loss"} <= set(by_stage["norld"].data.metrics)
    assert {"chamfer", "fscore", "NE", "SNE"} <= set(json.loads((root / "metrics" / "norld.json").read_text()))
    assert {"NE", "SNE"} <= set(json.loads((root / "metrics" / "nirne.json").read_text()))
    for metrics in (root / "metrics").glob("*.json"):  # numbers only, the same in every clone
        assert str(root) not in metrics.read_text() and not re.search(r'": "', metrics.read_text()), metrics
    assert by_stage["eval_norld"].data.tags["eval.norld"] == "outputs/models/norld/model.pt"  # provenance as tags
    first = project.shard_digests(root)
    assert first
    _commit(root, "run 1")

    # A second run holds the lock while this one tries to start.
    holder = subprocess.Popen(
        [
            str(project.REPO / ".venv" / "bin" / "python"),
            "-c",
            "import time; from flows import project\n"
            "with project.run_lock():\n print('locked', flush=True); time.sleep(60)",
        ],
        cwd=root,
        env=project.env(root),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    refused = project.run(root, "hi3dgen", "run", check=False)
    holder.kill()
    assert refused.returncode != 0 and "another hi3dgen run is in progress" in refused.stderr

    again = project.run(root, "hi3dgen", "run").stdout
    assert again.count("skipped") >= len(STAGES), again
    assert project.shard_digests(root) == first

    # The rerun trained nothing, yet its run id names the models that its skipped stages stand for.
    rerun_id = re.search(r"generate --from-run (\w+)", again).group(1)
    image = _rendered_image(root, tmp_path / "photo.png")
    project.run(
        root,
        "hi3dgen",
        "generate",
        "--from-run",
        rerun_id,
        "--grid",
        "24",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "mesh.glb"),
        str(image),
    )
    assert all((tmp_path / f"mesh.{kind}").stat().st_size > 0 for kind in ("glb", "normal.png", "preview.png"))
    logged = [a.path for a in _client(root).list_artifacts(rerun_id, "generate")]
    assert logged == ["generate/mesh.glb", "generate/mesh.normal.png", "generate/mesh.preview.png"]

    # One evaluation knob changed: only eval_norld runs; compare shows that knob and every stage's
    # key metrics for both runs (skipped stages show those of the run that made their outputs).
    third = project.run(root, "hi3dgen", "run", "--set", "eval_norld.steps=3").stdout
    ran = dict(re.findall(r"^(\w+)\s+(yes|skipped)\s+[\d.]+$", third, re.M))
    assert sorted(ran) == sorted(STAGES) and [s for s, how in ran.items() if how == "yes"] == ["eval_norld"], third
    table = project.run(root, "hi3dgen", "runs", "compare").stdout
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in table.splitlines()[1:]}
    assert rows["param eval_norld.steps"] == ["3", "2"], table  # newest run first
    for key in ("eval_norld/chamfer", "eval_norld/NE", "eval_nirne/SNE", "norld/train/samples_per_s"):
        assert "-" not in rows[f"metric {key}"] and len(rows[f"metric {key}"]) == 2, table

    # The two runs committed: DVC compares them, the knob and the metrics it moved, nothing else.
    _commit(root, "run 3: eval_norld.steps=3")
    params = json.loads(project.run(root, "dvc", "params", "diff", "HEAD~1", "--json").stdout)
    assert params == {"params.yaml": {"eval_norld.steps": {"old": 2, "new": 3, "diff": 1}}}, params
    metrics = json.loads(project.run(root, "dvc", "metrics", "diff", "HEAD~1", "--json").stdout)
    assert list(metrics) == ["metrics/norld.json"], metrics
    moved = {k for k, v in metrics["metrics/norld.json"].items() if v["diff"]}
    assert "chamfer" in moved, metrics
