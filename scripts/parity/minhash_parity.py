#!/usr/bin/env python3
"""MinHash signatures: curate against datatrove's MinhashDedupSignature
(default MinhashConfig: word 5-grams, 14 bands x 8 rows, seed 1, 64-bit
xxHash, default text normalisation, English words from spaCy), document by
document on the same texts. Also times the signature computation alone on
one core on each side (reading the documents excluded on both).

    minhash_parity.py --curate BIN FILE.jsonl[.zst] ...
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filters_parity import build_docs  # noqa: E402
from jsonl import write_jsonl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    docs = build_docs(args.inputs)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        stage = MinhashDedupSignature(output_folder=tmp)
        t0 = time.perf_counter()
        theirs = []
        for d in docs:
            shingles = stage.get_shingles(d["text"])
            theirs.append([h for band in stage.get_signature(shingles) for h in band] if shingles.size else None)
        py = time.perf_counter() - t0
        path = os.path.join(tmp, "docs.jsonl")
        write_jsonl(docs, path)
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            out = subprocess.run([args.curate, "minhash"], stdin=f, check=True, capture_output=True).stdout
        rs = time.perf_counter() - t0
    ours = [json.loads(line) for line in out.decode().splitlines()]
    assert len(ours) == len(theirs)
    same = sum(a == b for a, b in zip(ours, theirs))
    with_sig = sum(t is not None for t in theirs)
    hashes = sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(ours, theirs) if a and b)
    print(f"{len(docs)} documents ({with_sig} with a signature), {mb:.1f} MB of text")
    print(f"identical signatures: {same}/{len(docs)} ({100 * same / len(docs):.2f}%); "
          f"identical hashes {hashes}/{112 * with_sig}")
    print(f"datatrove get_shingles + get_signature: {py:.1f} s ({mb / py:.2f} MB/s)")
    print(f"curate minhash (one process, JSON in and out): {rs:.2f} s ({mb / rs:.1f} MB/s), {py / rs:.0f}x")
    for d, a, b in zip(docs, ours, theirs):
        if a != b:
            print("first difference:", d["id"], repr(d["text"][:200]))
            break
    return 0 if same == len(docs) else 1


if __name__ == "__main__":
    sys.exit(main())
