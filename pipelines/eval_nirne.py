"""DVC stage `eval_nirne`: NE / SNE of the final NiRNE on the val split -> metrics/nirne.json."""

import mlflow

from hi3dgen.eval.nirne import evaluate_checkpoint
from pipelines.common import MODELS, ROOT, SHARDS, stage


def main() -> None:
    with stage("eval_nirne", section="nirne"):
        result = evaluate_checkpoint(str(MODELS / "nirne_stage2" / "checkpoints" / "last.pt"), str(SHARDS),
                                     ROOT / "metrics" / "nirne.json", split="val", domain="any")
        mlflow.log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float)) and v is not None})


if __name__ == "__main__":
    main()
