"""DVC stage `eval_norld`: generation from the val split's ground-truth normal maps, scored by
Chamfer, F-score, normal consistency and NE/SNE of the rendered normals -> metrics/norld.json."""

from hi3dgen.eval.norld import SampleConfig, evaluate_checkpoints
from hi3dgen.geometry.mesh_extract import ExtractConfig
from pipelines.common import MODELS, ROOT, SHARDS, log_result, params, stage
from pipelines.norld import VAE


def main() -> None:
    p = params("eval_norld")
    with stage("eval_norld"):
        result = evaluate_checkpoints(
            str(MODELS / "norld" / "model.pt"),
            str(VAE),
            str(SHARDS),
            ROOT / "metrics" / "norld.json",
            split="val",
            limit=p["shapes"],
            sample=SampleConfig(p["steps"], p["guidance"], p["seed"]),
            extract=ExtractConfig(resolution=p["grid"]),
        )
        log_result(result)


if __name__ == "__main__":
    main()
