"""fastText models and predictions for tests/cli/fasttext.rs, from Python fastText.

    fasttext_models.py DIR

DIR holds what the test wrote: lid.train and glot.train (language ID),
quality.train (a binary classifier), texts.jsonl (texts to predict) and,
for the classifier step, docs.jsonl. This script trains the models there
(softmax, quantized, one-vs-all, hierarchical softmax), and writes each
model's predictions of every text as NAME.pred.jsonl ({"labels", "probs"},
every label, as datatrove asks: newlines as spaces, k=-1), plus
classifier.expected.jsonl: what datatrove's FastTextClassifierFilter does to
docs.jsonl (its filter() and split_into_parts, copied below).
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import fasttext
import numpy as np

out = Path(sys.argv[1])
texts = [json.loads(line)["text"] for line in open(out / "texts.jsonl", encoding="utf-8")]


def train(data, name, **options):
    model = fasttext.train_supervised(input=str(out / data), seed=0, thread=1, verbose=0, **options)
    model.save_model(str(out / name))
    return model


def predict_all(model, name):
    with open(out / f"{name}.pred.jsonl", "w", encoding="utf-8") as f:
        for text in texts:
            labels, probs = model.predict(text.replace("\n", " "), k=-1)
            f.write(json.dumps({"labels": list(labels), "probs": [float(p) for p in probs]}) + "\n")


lid = train("lid.train", "lid.bin", epoch=5, dim=16, minn=2, maxn=5, wordNgrams=2, bucket=100000, lr=0.5)
predict_all(lid, "lid.bin")
lid.quantize(input=str(out / "lid.train"), qnorm=True, retrain=True, cutoff=2000, epoch=1, thread=1, verbose=0)
lid.save_model(str(out / "lid.ftz"))
predict_all(lid, "lid.ftz")
ova = train("lid.train", "lid-ova.bin", epoch=10, dim=16, minn=3, maxn=6, wordNgrams=1, loss="ova", lr=0.5, bucket=50000)
predict_all(ova, "lid-ova.bin")
glot = train("glot.train", "glot.bin", epoch=20, dim=8, minn=2, maxn=4, bucket=20000, lr=0.5)
predict_all(glot, "glot.bin")
quality = train("quality.train", "quality.bin", epoch=10, dim=16, wordNgrams=2, bucket=100000, loss="hs")
predict_all(quality, "quality.bin")


# datatrove 0.10's split_into_parts (PARAGRAPH) and FastTextClassifierFilter.filter,
# with keep_labels=[("hq", 0.5)] and its defaults (newline_replacement="").
def paragraphs(text):
    og_lines = text.splitlines()
    lines = []
    next_line = []
    for li, line in enumerate(og_lines):
        if line.strip() and next_line:
            lines.append("".join(next_line))
            next_line = []
        next_line.append(line)
        if li != len(og_lines) - 1:
            next_line.append("\n")
    if next_line:
        lines.append("".join(next_line))
    return lines


def classify(text, units):
    kept_spans = []
    label_scores = defaultdict(list)
    for unit in units:
        labels, scores = quality.predict(unit.strip().replace("\n", ""), k=-1)
        for label, score in zip(labels, scores):
            label_scores[label].append(score)
        if dict(zip(labels, scores)).get("__label__hq", -9e9) >= 0.5:
            kept_spans.append(unit)
    text = "".join(kept_spans)
    return {
        "kept": not not text.strip(),
        "text": text,
        "scores": {label: np.mean(scores).item() for label, scores in label_scores.items()},
    }


with open(out / "classifier.expected.jsonl", "w", encoding="utf-8") as f:
    for line in open(out / "docs.jsonl", encoding="utf-8"):
        doc = json.loads(line)
        f.write(
            json.dumps(
                {
                    "id": doc["id"],
                    "document": classify(doc["text"], [doc["text"]]),
                    "paragraph": classify(doc["text"], paragraphs(doc["text"])),
                }
            )
            + "\n"
        )

# A model curate trained: Python loads it and scores the held-out lines.
trained = out / "trained" / "model.bin"
if trained.exists():
    model = fasttext.load_model(str(trained))
    predict_all(model, "trained.bin")
    valid = [line.rstrip("\n").split(" ", 1) for line in open(f"{trained}.valid.txt", encoding="utf-8")]
    correct = sum(model.predict(text)[0][0] == label for label, text in valid)
    own = fasttext.train_supervised(
        input=f"{trained}.train.txt", dim=16, epoch=10, wordNgrams=2, lr=0.1, bucket=100000, minCount=1,
        seed=0, thread=1, verbose=0,
    )
    own_correct = sum(own.predict(text)[0][0] == label for label, text in valid)
    json.dump(
        {"held_out": len(valid), "accuracy_of_curate_model": correct / len(valid), "accuracy_of_python_model": own_correct / len(valid)},
        open(out / "trained.python.json", "w"),
    )
