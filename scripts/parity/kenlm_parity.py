#!/usr/bin/env python3
"""Perplexities from curate's `perplexity` step against the `kenlm` Python
package, on the same ARPA file and the same documents.

The ARPA model is built here from REFERENCE (interpolated absolute
discounting, written in backoff form: any valid ARPA file will do, since
this checks scoring); TEXTS are scored by both. Exits non-zero when a
document's perplexity differs by more than 1e-4 (relative).

    kenlm_parity.py --curate BIN --work DIR --reference REF.jsonl[.zst] --texts TEXTS.jsonl[.zst] [--order 3]
"""
import argparse
import collections
import json
import math
import os
import subprocess


def read(path):
    raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout if path.endswith(".zst") else open(path, "rb").read()
    return [json.loads(l) for l in raw.splitlines() if l.strip()]


def build_arpa(sentences, order, path, discount=0.7):
    counts = [collections.Counter() for _ in range(order + 1)]
    for words in sentences:
        seq = ["<s>"] + words + ["</s>"]
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                gram = tuple(seq[i:i + n])
                if n == 1 and gram == ("<s>",):
                    continue
                if "</s>" in gram[:-1]:
                    continue
                counts[n][gram] += 1
    total = sum(counts[1].values())
    vocab = len(counts[1]) + 1
    prob = {("<unk>",): 1 / (total + vocab)}
    for (w,), c in counts[1].items():
        prob[(w,)] = (c + 1) / (total + vocab)
    # context -> (count, distinct followers)
    backoff = {}
    for n in range(2, order + 1):
        ctx_count, followers = collections.Counter(), collections.Counter()
        for gram, c in counts[n].items():
            ctx_count[gram[:-1]] += c
            followers[gram[:-1]] += 1
        for ctx in ctx_count:
            backoff[ctx] = discount * followers[ctx] / ctx_count[ctx]
        for gram, c in counts[n].items():
            ctx = gram[:-1]
            lower = lower_prob(prob, backoff, gram[1:])
            prob[gram] = max(c - discount, 0) / ctx_count[ctx] + backoff[ctx] * lower
    with open(path, "w") as f:
        grams_by_order = collections.defaultdict(list)
        for gram in prob:
            grams_by_order[len(gram)].append(gram)
        grams_by_order[1].append(("<s>",))
        f.write("\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={len(grams_by_order[n])}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for gram in grams_by_order[n]:
                lp = -99.0 if gram == ("<s>",) else math.log10(prob[gram])
                line = f"{lp:.7f}\t{' '.join(gram)}"
                if n < order and gram in backoff:
                    line += f"\t{math.log10(backoff[gram]):.7f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


def lower_prob(prob, backoff, gram):
    if gram in prob:
        return prob[gram]
    if len(gram) == 1:
        return prob[("<unk>",)]
    return backoff.get(gram[:-1], 1.0) * lower_prob(prob, backoff, gram[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--order", type=int, default=3)
    args = ap.parse_args()
    import kenlm

    os.makedirs(args.work, exist_ok=True)
    sentences = [line.split() for d in read(args.reference) for line in d["text"].split("\n") if line.split()]
    arpa = os.path.join(args.work, "model.arpa")
    build_arpa(sentences, args.order, arpa)
    model = kenlm.Model(arpa)
    docs = read(args.texts)
    texts = os.path.join(args.work, "texts.jsonl")
    with open(texts, "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": f"t{i}", "text": d["text"]}) + "\n")
    out = os.path.join(args.work, "out")
    subprocess.run(["rm", "-rf", out], check=True)
    pipeline = os.path.join(args.work, "ppl.toml")
    with open(pipeline, "w") as f:
        f.write(f'[input]\npath = "{texts}"\n[[step]]\ntype = "perplexity"\npath = "{arpa}"\n[output]\npath = "{out}"\nformat = "jsonl"\n')
    subprocess.run([args.curate, "run", pipeline, "--progress", "none"], check=True, capture_output=True)
    ours = {}
    for fn in sorted(os.listdir(out)):
        if fn.endswith(".jsonl.zst"):
            for d in read(os.path.join(out, fn)):
                ours[d["id"]] = d["perplexity"]
    worst, n = 0.0, 0
    for i, d in enumerate(docs):
        score, length = 0.0, 0
        for line in d["text"].split("\n"):
            if line.split():
                score += model.score(" ".join(line.split()), bos=True, eos=True)
                length += len(line.split()) + 1
        if length == 0:
            continue
        ref = 10 ** (-score / length)
        worst = max(worst, abs(ours[f"t{i}"] - ref) / ref)
        n += 1
    print(f"{n} documents scored by a {args.order}-gram model of {len(sentences)} reference sentences; "
          f"largest relative difference from kenlm: {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("perplexities differ by more than 1e-4")


if __name__ == "__main__":
    main()
