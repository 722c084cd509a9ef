#!/usr/bin/env python3
"""lm-evaluation-harness as the reference for `curate eval --choice`
(trainer/tests/eval.rs runs it with the python of scripts/pyref.sh).

    lm_eval_choice.py MODEL_DIR CHOICES.jsonl

Runs the harness's `hf` model on the local folder with a multiple-choice
task over the file ({"context", "choices", "gold"}) and prints one JSON
object: acc, acc_norm and every choice's log-likelihood, question by
question. Nothing is downloaded: the dataset is the local file.
"""
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

TASK = """task: curate_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def main(model: str, choices: str) -> None:
    with tempfile.TemporaryDirectory() as tasks:
        with open(os.path.join(tasks, "curate_choice.yaml"), "w") as f:
            f.write(TASK.format(path=os.path.abspath(choices)))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model},dtype=float32",
            tasks=["curate_choice"],
            task_manager=TaskManager(include_path=tasks),
            device="cpu",
            batch_size=1,
            log_samples=True,
        )
    result = out["results"]["curate_choice"]
    samples = sorted(out["samples"]["curate_choice"], key=lambda s: s["doc_id"])
    print(json.dumps({
        "acc": result["acc,none"],
        "acc_norm": result["acc_norm,none"],
        "loglikelihoods": [[float(r[0][0]) for r in s["resps"]] for s in samples],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
