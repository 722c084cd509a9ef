#!/usr/bin/env python3
"""Recall of curate's PII step on values inserted into real text, next to
other numbers, and its changes to prose full of numbers.

Recall: excerpts of real prose (about 60 words each) that the `pii` step
leaves unchanged get one value each, of a known kind (pii_eval.py's
generators: Luhn-valid cards plain or grouped, SSNs, IBANs with valid check
digits, phone numbers in common formats, e-mails, IPs, secrets), at a
random word position. A quarter of the values go in as they are; the rest
get another number right before them, right after them, or both, separated
by one space (a price, a year, a date, a version, a count, an amount, a
percentage), as web and mail text has them. A value counts as found only
when the output is the excerpt with exactly the value replaced by its tag:
a neighbour swallowed with it, a wrong tag or a miss all count against it.

Changes to prose: every document of the given corpora (State of the Union
speeches are full of amounts, years and counts) goes through the step, and
each tag in the output is a changed span; the script prints them per MB.

    pii_inserted.py --curate BIN --work DIR PROSE.jsonl[.zst] ... [--per-kind 1000] [--seed 1] [--show 5]
"""
import argparse
import json
import os
import random
import re
import subprocess

from jsonl import read_jsonl, read_shards, write_jsonl
from pii_eval import TAGS, positives

NEIGHBOURS = [
    lambda r: f"${r.randint(1, 999)}", lambda r: f"${r.randint(1, 99)},{r.randint(100, 999)}.{r.randint(10, 99)}",
    lambda r: f"€{r.randint(1, 500)}", lambda r: f"{r.randint(1, 99)}.{r.randint(10, 99)}",
    lambda r: str(r.randint(1950, 2030)), lambda r: f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(1990, 2030)}",
    lambda r: f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 20)}", lambda r: f"{r.randint(1, 9)}.{r.randint(0, 20)}",
    lambda r: str(r.randint(1, 99)), lambda r: str(r.randint(100, 9999)), lambda r: f"{r.randint(1, 999)},{r.randint(100, 999)}",
    lambda r: f"{r.randint(1, 99)}.{r.randint(0, 9)}%", lambda r: f"#{r.randint(1, 99999)}", lambda r: f"{r.randint(1, 12)}:{r.randint(0, 59):02d}",
]
MODES = ["alone", "before", "after", "both"]


def run_pii(curate, work, name, docs):
    path = os.path.join(work, f"{name}.jsonl")
    write_jsonl(docs, path)
    out = os.path.join(work, f"{name}-out")
    subprocess.run(["rm", "-rf", out], check=True)
    pipeline = os.path.join(work, f"{name}.toml")
    with open(pipeline, "w") as f:
        f.write(f'[input]\npath = "{path}"\n[[step]]\ntype = "pii"\n[output]\npath = "{out}"\nformat = "jsonl"\n')
    subprocess.run([curate, "run", pipeline, "--progress", "none"], check=True, capture_output=True)
    return {d["id"]: d["text"] for d in read_shards(out)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("prose", nargs="+")
    ap.add_argument("--per-kind", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)

    corpora = {os.path.basename(p).split(".")[0]: read_jsonl(p) for p in args.prose}
    # Changed spans in the prose itself.
    tag_re = re.compile("<(" + "|".join(TAGS.values()) + ")>")
    prose_rows = []
    for name, docs in corpora.items():
        texts = run_pii(args.curate, args.work, f"prose-{name}", [{"id": str(i), "text": d["text"]} for i, d in enumerate(docs)])
        mb = sum(len(d["text"].encode()) for d in docs) / 1e6
        found = {}
        for t in texts.values():
            for m in tag_re.finditer(t):
                found[m.group(1)] = found.get(m.group(1), 0) + 1
        prose_rows.append((name, mb, found))

    # Excerpts the step leaves alone.
    words = [d["text"].split() for docs in corpora.values() for d in docs]
    words = [w for w in words if len(w) >= 80]
    excerpts = []
    for i in range(len(TAGS) * args.per_kind * 11 // 10):
        w = rng.choice(words)
        start = rng.randrange(len(w) - 60)
        excerpts.append(w[start:start + 60])
    base = run_pii(args.curate, args.work, "base", [{"id": str(i), "text": " ".join(e)} for i, e in enumerate(excerpts)])
    clean = [e for i, e in enumerate(excerpts) if base[str(i)] == " ".join(e)]

    cases = []
    for kind in TAGS:
        for _ in range(args.per_kind):
            e = clean[len(cases) % len(clean)]
            value = positives(kind, rng)
            mode = rng.choice(MODES)
            at = rng.randrange(1, len(e))
            before = e[:at] + ([rng.choice(NEIGHBOURS)(rng)] if mode in ("before", "both") else [])
            after = ([rng.choice(NEIGHBOURS)(rng)] if mode in ("after", "both") else []) + e[at:]
            prefix, suffix = " ".join(before) + " ", " " + " ".join(after)
            cases.append((kind, mode, value, prefix, suffix))
    out = run_pii(args.curate, args.work, "inserted", [{"id": str(i), "text": p + v + s} for i, (_, _, v, p, s) in enumerate(cases)])

    print(f"{len(cases)} values inserted into {len(clean)} clean excerpts of {', '.join(corpora)}\n")
    print("| kind | found | recall | alone | before | after | both |")
    print("|---|---|---|---|---|---|---|")
    misses = []
    for kind, tag in TAGS.items():
        per_mode = {m: [0, 0] for m in MODES}
        for i, (k, mode, value, prefix, suffix) in enumerate(cases):
            if k != kind:
                continue
            ok = out[str(i)] == f"{prefix}<{tag}>{suffix}"
            per_mode[mode][0] += ok
            per_mode[mode][1] += 1
            if not ok:
                misses.append((kind, value, prefix[-30:], suffix[:30], out[str(i)][max(0, len(prefix) - 30):len(prefix) + len(value) + 40]))
        found = sum(v[0] for v in per_mode.values())
        total = sum(v[1] for v in per_mode.values())
        cells = " | ".join(f"{per_mode[m][0]}/{per_mode[m][1]}" for m in MODES)
        print(f"| {kind} | {found}/{total} | {found / max(total, 1):.4f} | {cells} |")
    print("\n| prose | MB | changed spans | per MB | by kind |")
    print("|---|---|---|---|---|")
    for name, mb, found in prose_rows:
        total = sum(found.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "-"
        print(f"| {name} | {mb:.1f} | {total} | {total / mb:.2f} | {kinds} |")
    if misses and args.show:
        print(f"\nmisses ({len(misses)}), the first {args.show} per kind:")
        shown = {}
        for kind, value, pre, suf, got in misses:
            if shown.get(kind, 0) < args.show:
                shown[kind] = shown.get(kind, 0) + 1
                print(f"  {kind}: {pre!r} [{value!r}] {suf!r}\n      -> {got!r}")


if __name__ == "__main__":
    main()
