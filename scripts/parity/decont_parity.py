"""Decontamination parity with datatrove 0.10 (NGramsDecontIndexer + NGramsDecontFilter).

    python scripts/parity/decont_parity.py [--curate target/release/curate] [--scale N] [--write-fixture]

Builds benchmark items and a corpus from real text (Moby-Dick, UDHR, web-like
lines from fixtures/), where documents hold benchmark answers and questions
as they are or with case, punctuation, numbers, accents and spacing changed,
or only 11 of 12 words of them. Then:

- the index: datatrove's `compute_hashes` (called on a stand-in object, since
  its `run` needs lighteval for its task registry) against `curate decont
  index`: the same hashes per task;
- the filter: datatrove's `NGramsDecontFilter` on its own index against the
  `decontaminate` step on curate's index and on datatrove's: the same
  documents dropped, with the same n-gram and task.

`--write-fixture` writes fixtures/decont/ (benchmarks, corpus, and datatrove's
decisions), which tests/cli/decont.rs checks curate against. `--scale N`
repeats the corpus N times (with edits) and times both filters on one core.
Needs datatrove with spaCy (a scratch venv, never the build's).
"""

import argparse
import gzip
import io
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import zstandard
from datatrove.data import Document
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.word_tokenizers import load_word_tokenizer

root = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--curate", default=str(Path.home() / ".cache/curate/target/release/curate"))
parser.add_argument("--scale", type=int, default=0)
parser.add_argument("--write-fixture", action="store_true")
args = parser.parse_args()
rng = random.Random(12)

book = []
with open(root / "fixtures/corpus/moby_dick.jsonl.zst", "rb") as f:
    for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8"):
        book += [p.strip() for p in json.loads(line)["text"].split("\n\n") if len(p.split()) > 40]
udhr = [json.loads(l)["text"] for l in gzip.open(root / "fixtures/corpus/udhr_sample.jsonl.gz", "rt")]
web = [json.loads(l)["text"] for l in open(root / "fixtures/words/spacy_web.jsonl")]


def sentences(paragraph):
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", paragraph) if len(s.split()) >= 14]


# Benchmark items: a question (a sentence) and its answer (the next one),
# from paragraphs the corpus will partly hold; arithmetic items with numbers.
items = []
for p in rng.sample(book, 60):
    ss = sentences(p)
    if len(ss) >= 2:
        task = rng.choice(["moby qa", "moby_cloze", "leaderboard|moby:5"])
        items.append({"task": task, "query": "Question: " + ss[0] + "\nAnswer:", "text": ss[1], "source": p})
for i in range(12):
    a, b = rng.randint(10, 90), rng.randint(2, 9)
    items.append({
        "task": "arith",
        "query": f"Natalia sold clips to {a} of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "text": [f"Natalia sold {a}/2 = {a // 2} clips in May. Natalia sold {a}+{a // 2} = {a + a // 2} clips altogether in April and May. #### {a + a // 2}",
                 f"She sold {a + a // 2} clips in total, {b} times more than she expected at the start of the month of April."],
    })


def perturb(text):
    kind = rng.randrange(6)
    if kind == 0:
        return text.upper()
    if kind == 1:
        return re.sub(r"[,;:]", " - ", text)
    if kind == 2:
        return re.sub(r"\d+", lambda m: str(int(m.group()) + 7), text)
    if kind == 3:
        return text.replace("e", "é").replace("a", "à")
    if kind == 4:
        return "\n   ".join(text.split(" "))
    return text


def eleven(text):
    words = text.split()
    start = rng.randrange(max(1, len(words) - 11))
    return " ".join(words[start:start + 11])


# The paragraphs of the items, and as many others.
sources = {item["source"] for item in items if "source" in item}
docs = list(sources) + rng.sample([p for p in book if p not in sources], 60)
for item in items:
    answers = item["text"] if isinstance(item["text"], list) else [item["text"]]
    filler = rng.choice(book)
    docs.append(filler + "\n\n" + perturb(answers[0]))
    docs.append(perturb(item["query"].replace("Question: ", "").replace("\nAnswer:", "")) + " " + perturb(answers[0]))
    docs.append(rng.choice(web) + " " + item["query"].replace("Question: ", "").replace("\nAnswer:", "") + " and more.")
    docs.append(eleven(answers[0]) + ". " + rng.choice(web))
for u in udhr[:20]:
    docs.append(u[:1500])
docs += rng.sample(web, 100)
rng.shuffle(docs)
corpus = [{"id": f"d{i:04d}", "text": t} for i, t in enumerate(docs)]
benchmarks = [{k: v for k, v in item.items() if k != "source"} for item in items]

# datatrove's index, through its own compute_hashes.
config = NGramsDecontConfig()
stand_in = SimpleNamespace(config=config, tokenizer=load_word_tokenizer("en"), hash_func=create_hash_func(config.hash_config))
hashes = {}
for item in benchmarks:
    for gold in item["text"] if isinstance(item["text"], list) else [item["text"]]:
        hashes.setdefault(item["task"], set()).update(NGramsDecontIndexer.compute_hashes(stand_in, gold, item["query"]))

work = Path(tempfile.mkdtemp())
dt_index = work / "datatrove-index"
dt_index.mkdir()
for task, task_hashes in hashes.items():
    np.array(sorted(task_hashes), dtype="<u8").tofile(dt_index / f"{task.replace(' ', '_')}.index.hashes")
bench_path, corpus_path = work / "benchmarks.jsonl", work / "corpus.jsonl"
bench_path.write_text("".join(json.dumps(b) + "\n" for b in benchmarks))
corpus_path.write_text("".join(json.dumps(d) + "\n" for d in corpus))

subprocess.run([args.curate, "decont", "index", "--input", str(bench_path), "--output", str(work / "curate-index")], check=True)
for task, task_hashes in hashes.items():
    ours = set(np.fromfile(work / "curate-index" / f"{task.replace(' ', '_')}.index.hashes", dtype="<u8").tolist())
    assert ours == task_hashes, f"{task}: {len(ours ^ task_hashes)} hashes differ"
print(f"index: {len(hashes)} tasks, {sum(map(len, hashes.values()))} n-grams, equal per task")

decont = NGramsDecontFilter(index_folder=str(dt_index))
expected = []
t0 = time.perf_counter()
for d in corpus:
    doc = Document(text=d["text"], id=d["id"])
    kept = decont.filter(doc)
    expected.append({"id": d["id"], "kept": kept is True, "ngram": doc.metadata.get("contaminated_ngram"), "task": doc.metadata.get("contaminated_task")})
dt_seconds = time.perf_counter() - t0
dropped = sum(not e["kept"] for e in expected)


def curate_decisions(index):
    out = work / f"out-{index.name}"
    pipeline = work / f"{index.name}.toml"
    pipeline.write_text(
        f'[input]\npath = "{corpus_path}"\n[[step]]\ntype = "decontaminate"\nindex = "{index}"\n'
        f'[output]\npath = "{out}"\nformat = "jsonl"\nrejected = true\n'
    )
    subprocess.run([args.curate, "run", str(pipeline), "--progress", "none", "--threads", "1"], check=True)
    seen = {}
    for shard in sorted(out.glob("*.jsonl.zst")) + sorted((out / "rejected").glob("*.jsonl.zst")):
        for line in zstandard.ZstdDecompressor().stream_reader(open(shard, "rb")).read().decode().splitlines():
            d = json.loads(line)
            seen[d["id"]] = {"id": d["id"], "kept": "rejected_reason" not in d, "ngram": d.get("contaminated_ngram"), "task": d.get("contaminated_task")}
    return [seen[d["id"]] for d in corpus]


for index in [work / "curate-index", dt_index]:
    ours = curate_decisions(index)
    bad = [(a, b) for a, b in zip(ours, expected) if a != b]
    assert not bad, f"{index.name}: {len(bad)} decisions differ, first {bad[:3]}"
print(f"filter: {len(corpus)} documents, {dropped} contaminated, every decision, n-gram and task equal (both indexes)")

if args.write_fixture:
    fixture = root / "fixtures/decont"
    fixture.mkdir(exist_ok=True)
    (fixture / "benchmarks.jsonl").write_text(bench_path.read_text())
    with open(fixture / "corpus.jsonl.gz", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
        g.write(corpus_path.read_bytes())
    (fixture / "datatrove.jsonl").write_text("".join(json.dumps(e) + "\n" for e in expected))
    print(f"wrote {fixture}")

if args.scale:
    rng2 = random.Random(5)
    big = []
    for r in range(args.scale):
        for d in corpus:
            words = d["text"].split(" ")
            if len(words) > 3:
                k = rng2.randrange(len(words))
                words[k] = words[k] + "s"
            big.append({"id": f"{d['id']}-{r}", "text": " ".join(words)})
    corpus_path.write_text("".join(json.dumps(d) + "\n" for d in big))
    mb = corpus_path.stat().st_size / 1e6
    t0 = time.perf_counter()
    for d in big:
        decont.filter(Document(text=d["text"], id=d["id"]))
    dt_seconds = time.perf_counter() - t0
    (work / "scale.toml").write_text(
        f'[input]\npath = "{corpus_path}"\n[[step]]\ntype = "decontaminate"\nindex = "{work / "curate-index"}"\n'
        f'[output]\npath = "{work / "out-scale"}"\n'
    )
    # The step alone, on documents in memory, as datatrove's filter() above.
    report = subprocess.run(
        [args.curate, "bench", str(corpus_path), "--pipeline", str(work / "scale.toml"), "--threads", "1", "--json", "--max-docs", str(len(big)), "--max-mb", "1000"],
        check=True, capture_output=True, text=True,
    ).stdout
    ours = next(r for r in json.loads(report) if r["step"] == "decontaminate" and r["threads"] == 1)
    assert ours["docs"] == len(big), ours
    print(f"speed, one core, {len(big)} documents, {mb:.1f} MB: datatrove {mb / dt_seconds:.2f} MB/s, curate {ours['megabytes_per_second']:.2f} MB/s, {ours['megabytes_per_second'] / (mb / dt_seconds):.1f}x")
