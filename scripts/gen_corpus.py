#!/usr/bin/env python3
"""Writes a large, realistic JSON Lines corpus for benchmarks and memory checks.

Documents are real text (the shared corpora, or the bundled fixtures when
those are absent) perturbed so that no two are byte-identical: paragraphs
are sampled, words are dropped and swapped at random. Deterministic for a
given seed.

    gen_corpus.py OUT.jsonl --bytes 1000000000 [--seed 1] [--source DIR]
"""
import argparse
import gzip
import io
import json
import os
import random
import subprocess
import sys


def load_texts(source):
    texts = []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if name.endswith(".zst"):
            raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
        elif name.endswith(".gz"):
            raw = gzip.decompress(open(path, "rb").read())
        elif name.endswith(".jsonl"):
            raw = open(path, "rb").read()
        else:
            continue
        for line in io.BytesIO(raw):
            text = json.loads(line).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
    return texts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    default_source = os.path.join(here, "..", "..", "shared", "corpora")
    if not os.path.isdir(default_source):
        default_source = os.path.join(here, "..", "fixtures", "corpus")
    ap.add_argument("--source", default=default_source)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    paragraphs = [p for t in load_texts(args.source) for p in t.split("\n") if len(p) > 40]
    if not paragraphs:
        sys.exit(f"no text found in {args.source}")
    written = 0
    n = 0
    with open(args.out, "w", encoding="utf-8") as f:
        while written < args.bytes:
            parts = []
            for _ in range(rng.randint(1, 12)):
                words = rng.choice(paragraphs).split(" ")
                for _ in range(max(1, len(words) // 20)):
                    i = rng.randrange(len(words))
                    if rng.random() < 0.5:
                        del words[i]
                    else:
                        j = rng.randrange(len(words))
                        words[i], words[j] = words[j], words[i]
                    if not words:
                        break
                parts.append(" ".join(words))
            doc = {"id": f"gen-{args.seed}-{n}", "text": "\n".join(parts), "source": "generated", "seed": args.seed}
            line = json.dumps(doc, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    print(f"{args.out}: {n} documents, {written} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
