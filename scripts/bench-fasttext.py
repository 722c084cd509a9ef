"""fastText inference speed: curate's `classifier` step against Python fastText, one core each.

    python scripts/bench-fasttext.py [--curate target/release/curate] [--docs 40000]

Trains two models with Python fastText on the shared corpora (../shared/corpora):
a language identifier like lid.176 (UDHR paragraphs of every language,
softmax, dim 16, character n-grams 2-4) and a binary quality classifier like
DCLM's (book and speech paragraphs against UDHR ones, word bigrams, dim 64).
Then predicts every label of each text (k=-1, as datatrove asks) on the same
texts, three ways:

- Python, `model.predict(text, k=-1)` per document, as datatrove calls it;
- Python, `model.f.multilinePredict(texts, -1, 0.0, "strict")`: one call for
  all texts, the C++ loop with the binding's per-call cost taken out, the
  nearest to fastText's C++ `predict-prob`;
- curate, `curate bench` of a pipeline with the step that uses such a
  model, on one thread: `language` (`model = "fasttext"`: the top label and
  its score on the document) for the identifier, `classifier` (every
  label's score on the document) for the quality model.

Needs fasttext (fasttext-numpy2-wheel) and zstandard in a scratch venv.
"""

import argparse
import io
import json
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path

import fasttext
import zstandard

root = Path(__file__).resolve().parents[1]
corpora = root.parent / "shared" / "corpora"
parser = argparse.ArgumentParser()
parser.add_argument("--curate", default=str(Path.home() / ".cache/curate/target/release/curate"))
parser.add_argument("--docs", type=int, default=40000)
args = parser.parse_args()
rng = random.Random(3)


def read(name):
    with open(corpora / name, "rb") as f:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8"):
            yield json.loads(line)


udhr = [(r["lang"], p.strip()) for r in read("udhr.jsonl.zst") for p in r["text"].split("\n") if len(p.strip()) > 20]
prose = [p.strip() for name in ["sotu.jsonl.zst", "moby_dick.jsonl.zst"] for r in read(name) for p in re.split(r"\n\s*\n", r["text"]) if len(p.strip()) > 40]
work = Path(tempfile.mkdtemp())
(work / "lid.train").write_text("".join(f"__label__{l} {t}\n" for l, t in udhr))
quality = [f"__label__hq {p.replace(chr(10), ' ')}" for p in prose[::2]] + [f"__label__lq {t}" for _, t in udhr[::3]]
rng.shuffle(quality)
(work / "quality.train").write_text("".join(q + "\n" for q in quality))
models = {
    "lid (softmax, %d labels)": fasttext.train_supervised(str(work / "lid.train"), dim=16, minn=2, maxn=4, epoch=2, lr=0.5, bucket=200000, thread=1, verbose=0),
    "quality (2 labels, bigrams)": fasttext.train_supervised(str(work / "quality.train"), dim=64, wordNgrams=2, epoch=2, bucket=200000, thread=1, verbose=0),
}

texts = [t for _, t in udhr] + prose
rng.shuffle(texts)
texts = (texts * (args.docs // len(texts) + 1))[: args.docs]
docs_path = work / "docs.jsonl"
docs_path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
mb = sum(len(t.encode()) for t in texts) / 1e6
print(f"{len(texts)} texts, {mb:.1f} MB of text")
print("| model | Python predict per doc | Python multilinePredict (C++ loop) | curate step | curate / C++ loop |")
print("|---|---|---|---|---|")
for name, model in models.items():
    name = name.replace("%d", str(len(model.labels)))
    path = work / "model.bin"
    model.save_model(str(path))
    lines = [t.replace("\n", " ") for t in texts]
    t0 = time.perf_counter()
    for line in lines:
        model.predict(line, k=-1)
    per_doc = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.f.multilinePredict([l + "\n" for l in lines], -1, 0.0, "strict")
    batched = time.perf_counter() - t0
    pipeline = work / "pipeline.toml"
    # Language ID is the language step's job; a quality score the classifier's.
    step = f'type = "language"\nmodel = "fasttext"\nmodel_path = "{path}"' if name.startswith("lid") else f'type = "classifier"\nmodel_path = "{path}"\nnewline_replacement = " "'
    pipeline.write_text(f'[input]\npath = "{docs_path}"\n[[step]]\n{step}\n[output]\npath = "{work}/out"\n')
    out = subprocess.run([args.curate, "bench", str(docs_path), "--pipeline", str(pipeline), "--threads", "1", "--json", "--max-docs", str(len(texts)), "--max-mb", "1000"], check=True, capture_output=True, text=True).stdout
    report = next(r for r in json.loads(out) if r["step"] in ("classifier", "language") and r["threads"] == 1)
    assert report["docs"] == len(texts), report
    ours_s = report["seconds"]
    rate = lambda s: f"{len(texts) / s:,.0f} docs/s, {mb / s:.1f} MB/s"
    print(f"| {name} | {rate(per_doc)} | {rate(batched)} | {rate(ours_s)} | {batched / ours_s:.2f}x |")
