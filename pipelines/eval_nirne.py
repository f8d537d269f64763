"""DVC stage `eval_nirne`: NE / SNE of the final NiRNE on the val split -> metrics/nirne.json."""

from hi3dgen.eval.nirne import evaluate_checkpoint
from pipelines.common import MODELS, ROOT, SHARDS, log_result, stage


def main() -> None:
    with stage("eval_nirne", section="nirne"):
        result = evaluate_checkpoint(
            str(MODELS / "nirne_stage2" / "checkpoints" / "last.pt"),
            str(SHARDS),
            ROOT / "metrics" / "nirne.json",
            split="val",
            domain="any",
        )
        log_result(result)


if __name__ == "__main__":
    main()
