#!/usr/bin/env python3
"""Dedup at scale: time and peak memory of each stage of `curate dedup` on a
generated corpus of N documents, a tenth of them near copies (one word of
60 changed, Jaccard similarity of word 5-grams about 0.84) of another.

    python3 scripts/dedup-scale.py --curate TARGET/release/curate --docs 1000000 --dir /big/disk/scale

Writes DIR/docs-N/part-*.jsonl (kept between runs) and DIR/work-N, and
prints one Markdown row per stage: wall seconds, peak resident memory
(GNU time's maximum RSS), and the cluster stage's counts against the
planted copies. Needs numpy.
"""
import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

WORDS = 60
VOCAB = 50_000
PER_FILE = 1_000_000


def generate(folder: Path, n: int, seed: int = 1) -> int:
    """Writes the corpus unless it is there; returns the planted copies."""
    done = folder / "planted.json"
    if done.exists():
        return json.loads(done.read_text())["copies"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    # Pronounceable pseudo-words, so the text goes through the word splitter like prose.
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "du", "an", "el", "or", "is"])
    vocab = np.array(["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(VOCAB)])
    copies = 0
    for start in range(0, n, PER_FILE):
        count = min(PER_FILE, n - start)
        words = rng.integers(0, VOCAB, size=(count, WORDS), dtype=np.int32)
        # A tenth of the documents copy an earlier one of the same file, with one word changed.
        is_copy = rng.random(count) < 0.1
        is_copy[0] = False
        rows = np.flatnonzero(is_copy)
        sources = (rng.random(len(rows)) * rows).astype(np.int64)
        sources = np.where(is_copy[sources], sources - 1, sources).clip(0)
        words[rows] = words[sources]
        words[rows, rng.integers(0, WORDS, len(rows))] = rng.integers(0, VOCAB, len(rows))
        copies += len(rows)
        texts = vocab[words]
        with open(folder / f"part-{start // PER_FILE:04d}.jsonl", "w") as f:
            for i in range(count):
                f.write(json.dumps({"id": f"doc-{start + i}", "text": " ".join(texts[i]) + "."}) + "\n")
    done.write_text(json.dumps({"docs": n, "copies": copies}))
    return copies


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, stderr."""
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "peak_kib=%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    peak = [l for l in out.stderr.splitlines() if l.startswith("peak_kib=")][-1]
    return wall, int(peak.split("=")[1]) / 1024, out.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ranges", type=int, default=1, help="the bucket stage's --ranges (run as one task per part)")
    args = ap.parse_args()
    corpus = args.dir / f"docs-{args.docs}"
    started = time.perf_counter()
    copies = generate(corpus, args.docs)
    print(f"corpus: {args.docs:,} documents ({copies:,} planted near copies) in {time.perf_counter() - started:.0f} s")
    work = args.dir / f"work-{args.docs}"
    shutil.rmtree(work, ignore_errors=True)
    curate, threads = args.curate, ["--threads", str(args.threads)]
    stages = [
        ("signatures", [curate, "dedup", "signatures", "--input", str(corpus), "--work", str(work), "--progress", "none", *threads]),
        ("buckets", [curate, "dedup", "buckets", "--work", str(work), "--ranges", str(args.ranges)]),
        ("clusters", [curate, "dedup", "clusters", "--work", str(work)]),
    ]
    print(f"bucket stage: {args.ranges} range(s) per band")
    print(f"| stage | documents | wall s | peak RSS MiB |")
    print("|---|---|---|---|")
    for name, cmd in stages:
        wall, peak, _ = timed(cmd)
        print(f"| {name} | {args.docs:,} | {wall:.1f} | {peak:,.0f} |", flush=True)
    stats = json.loads((work / "clusters/stats.json").read_text())
    print(f"clusters: {stats['clusters']:,}, clustered documents {stats['clustered_docs']:,}, "
          f"removed {stats['removed_docs']:,} (planted copies: {copies:,})")


if __name__ == "__main__":
    main()
