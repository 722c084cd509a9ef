#!/usr/bin/env python3
"""Keep/drop agreement of curate's filters with datatrove's, document by
document, on real text.

Documents: every input document whole, plus pieces of it (runs of 1 to 40
consecutive lines, deterministic), so that short and long, clean and messy
texts near every threshold are all present. Each filter runs alone on the
same documents in datatrove (in this process) and in curate (a pipeline with
the rejected output on); the script prints, per filter, how many documents
get the same decision and the same reason, the disagreements, and both
sides' time. It exits non-zero when a filter agrees on fewer than 99.5%.

    filters_parity.py --curate BIN --work DIR FILE.jsonl[.zst] ...
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

from jsonl import read_jsonl, read_shards

FILTERS = {
    "gopher_quality": ("datatrove.pipeline.filters", "GopherQualityFilter"),
    "gopher_repetition": ("datatrove.pipeline.filters", "GopherRepetitionFilter"),
    "c4_quality": ("datatrove.pipeline.filters", "C4QualityFilter"),
    "fineweb_quality": ("datatrove.pipeline.filters", "FineWebQualityFilter"),
}


def build_docs(paths, seed=0):
    rng = random.Random(seed)
    docs = []
    for path in paths:
        for d in read_jsonl(path):
            text = d["text"]
            docs.append(text)
            lines = text.split("\n")
            i = 0
            while i < len(lines):
                n = rng.randint(1, 40)
                piece = "\n".join(lines[i:i + n])
                if piece.strip():
                    docs.append(piece)
                i += n
    return [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--filters", default=",".join(FILTERS))
    ap.add_argument("--show", type=int, default=8)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    docs = build_docs(args.inputs)
    docs_path = os.path.join(args.work, "docs.jsonl")
    with open(docs_path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    mb = os.path.getsize(docs_path) / 1e6
    print(f"{len(docs)} documents, {mb:.1f} MB")

    from datatrove.data import Document
    import importlib

    worst = 1.0
    print("| filter | same decision | same reason | same kept text | datatrove s | curate s (1 thread) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    details = []
    for name in args.filters.split(","):
        module, cls = FILTERS[name]
        flt = getattr(importlib.import_module(module), cls)()
        t0 = time.perf_counter()
        ref, ref_text = {}, {}
        for d in docs:
            doc = Document(text=d["text"], id=d["id"])
            r = flt.filter(doc)
            ref[d["id"]] = "keep" if r is True else (r[1] if isinstance(r, tuple) else "drop")
            ref_text[d["id"]] = doc.text  # filters that rewrite (C4) change it
        py_secs = time.perf_counter() - t0

        out = os.path.join(args.work, f"out-{name}")
        subprocess.run(["rm", "-rf", out], check=True)
        pipeline = os.path.join(args.work, f"{name}.toml")
        with open(pipeline, "w") as f:
            f.write(f'[input]\npath = "{docs_path}"\n[[step]]\ntype = "{name}"\n'
                    f'[output]\npath = "{out}"\nformat = "jsonl"\nrejected = true\n')
        t0 = time.perf_counter()
        subprocess.run([args.curate, "run", pipeline, "--threads", "1", "--progress", "none"], check=True, capture_output=True)
        rs_secs = time.perf_counter() - t0
        ours, our_text = {}, {}
        for folder, rejected in ((out, False), (os.path.join(out, "rejected"), True)):
            for d in read_shards(folder):
                ours[d["id"]] = d["rejected_reason"] if rejected else "keep"
                if not rejected:
                    our_text[d["id"]] = d["text"]
        same_decision = sum((ref[i] == "keep") == (ours.get(i) == "keep") for i in ref)
        same_reason = sum(ref[i] == ours.get(i) for i in ref)
        kept_both = [i for i in ref if ref[i] == "keep" and ours.get(i) == "keep"]
        same_text = sum(ref_text[i] == our_text[i] for i in kept_both)
        share = same_decision / len(ref)
        worst = min(worst, share)
        print(f"| {name} | {same_decision}/{len(ref)} ({share:.2%}) | {same_reason}/{len(ref)} ({same_reason / len(ref):.2%}) "
              f"| {same_text}/{len(kept_both)} "
              f"| {py_secs:.1f} | {rs_secs:.1f} | {py_secs / rs_secs:.0f}x |")
        diffs = [(i, ref[i], ours.get(i)) for i in ref if ref[i] != ours.get(i)]
        diffs += [(i, "text", repr(our_text[i][:80])) for i in kept_both if ref_text[i] != our_text[i]]
        details.append((name, diffs))
    for name, diffs in details:
        for i, a, b in diffs[: args.show]:
            text = next(d["text"] for d in docs if d["id"] == i)
            print(f"{name} {i}: datatrove {a}, curate {b}: {text[:100]!r}")
    if worst < 0.995:
        # The rewritten text is part of a filter's decision: C4's kept lines must match too.
        sys.exit(f"agreement below 99.5%: {worst:.2%}")


if __name__ == "__main__":
    main()
