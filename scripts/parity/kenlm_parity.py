#!/usr/bin/env python3
"""Perplexities from curate's `perplexity` step against the `kenlm` Python
package, on the same ARPA file and the same documents.

`curate lm train` estimates a modified Kneser-Ney model from REFERENCE
(which also checks that KenLM loads curate's ARPA files); TEXTS are scored
by both. Exits non-zero when a document's perplexity differs by more than
1e-4 (relative).

    kenlm_parity.py --curate BIN --work DIR --reference REF.jsonl[.zst] --texts TEXTS.jsonl[.zst] [--order 3]
"""
import argparse
import json
import os
import subprocess

from jsonl import read_jsonl, read_shards


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
    sentences = [line.split() for d in read_jsonl(args.reference) for line in d["text"].split("\n") if line.split()]
    arpa = os.path.join(args.work, "model.arpa")
    subprocess.run([args.curate, "lm", "train", "--input", args.reference, "--output", arpa, "--order", str(args.order)],
                   check=True, capture_output=True)
    model = kenlm.Model(arpa)
    docs = read_jsonl(args.texts)
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
    ours = {d["id"]: d["perplexity"] for d in read_shards(out)}
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
