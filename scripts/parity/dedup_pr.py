#!/usr/bin/env python3
"""MinHash dedup, precision and recall: curate's four stages beside
datatrove's on the same generated corpus and the same (default) parameters.

The corpus: passages of real text (150 words each, from the given JSON
Lines files), and for each passage one variant with a share of its words
replaced, chosen so that the pairs spread over Jaccard similarities from
about 0.3 to 1. The truth is the exact Jaccard similarity of the two
documents' shingle sets (datatrove's own normalisation, words and 5-grams);
a pair "should" be found when it is at least the threshold the 14 × 8 bands
aim at, (1/14)^(1/8) ≈ 0.72.

For each tool: recall is the share of those pairs that end in one cluster;
precision is the share of all pairs inside clusters (every two members)
whose Jaccard is at or above the threshold. Both tools also report how many
documents they remove. Then curate's SimHash at a few Hamming distances,
scored against the same truth (datatrove has no SimHash).

    dedup_pr.py --curate BIN --work DIR FILE.jsonl[.zst] ...
"""
import argparse
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jsonl import read_jsonl, write_jsonl  # noqa: E402

THRESHOLD = (1 / 14) ** (1 / 8)


def corpus(paths, passages, seed=1):
    rng = random.Random(seed)
    words = [w for p in paths for d in read_jsonl(p) for w in d["text"].split()]
    vocabulary = sorted(set(words))
    docs, pairs = [], []
    for i in range(passages):
        start = rng.randrange(0, len(words) - 150)
        base = words[start:start + 150]
        # Replace a share of the words: 0 to 12% of them, spread evenly over pairs.
        edits = int(round(150 * 0.12 * i / max(passages - 1, 1)))
        variant = list(base)
        for j in rng.sample(range(150), edits):
            variant[j] = rng.choice(vocabulary)
        docs.append({"id": f"base-{i}", "text": " ".join(base)})
        docs.append({"id": f"variant-{i}", "text": " ".join(variant)})
        pairs.append((2 * i, 2 * i + 1))
    return docs, pairs


def jaccard(a, b):
    return len(a & b) / len(a | b) if a | b else 0.0


def clusters_from(members):
    """Cluster id → sorted document indices, from a doc → cluster map."""
    out = {}
    for doc, cluster in members.items():
        out.setdefault(cluster, []).append(doc)
    return [sorted(v) for v in out.values() if len(v) > 1]


def score(name, clusters, removed, pairs, shingles):
    cluster_of = {d: i for i, c in enumerate(clusters) for d in c}
    should = [(a, b) for a, b in pairs if jaccard(shingles[a], shingles[b]) >= THRESHOLD]
    found = sum(1 for a, b in should if a in cluster_of and cluster_of.get(a) == cluster_of.get(b))
    inside = [(a, b) for c in clusters for a, b in itertools.combinations(c, 2)]
    right = sum(1 for a, b in inside if jaccard(shingles[a], shingles[b]) >= THRESHOLD)
    precision = right / len(inside) if inside else 1.0
    recall = found / len(should) if should else 1.0
    print(f"| {name} | {precision:.4f} ({right}/{len(inside)}) | {recall:.4f} ({found}/{len(should)}) | {removed} |")
    return precision, recall


def run_datatrove(work, input_dir):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader

    sigs, buckets, clusters = (os.path.join(work, "dt", x) for x in ("sigs", "buckets", "clusters"))
    logs = os.path.join(work, "dt", "logs")
    LocalPipelineExecutor([JsonlReader(input_dir), MinhashDedupSignature(sigs)], tasks=1,
                          logging_dir=logs + "1").run()
    LocalPipelineExecutor([MinhashDedupBuckets(sigs, buckets)], tasks=14, logging_dir=logs + "2").run()
    LocalPipelineExecutor([MinhashDedupCluster(buckets, clusters, save_cluster_id=True)], tasks=1,
                          logging_dir=logs + "3").run()
    members = {}
    path = os.path.join(clusters, "000000.clusters")
    if os.path.exists(path):
        raw = open(path, "rb").read()
        for i in range(0, len(raw), 8):
            doc, cluster = struct.unpack_from("<II", raw, i)
            members[doc] = cluster
    remove = os.path.join(clusters, "000000.remove")
    removed = os.path.getsize(remove) // 4 if os.path.exists(remove) else 0
    return clusters_from(members), removed


def run_curate(binary, work, input_path, flags=(), name="rs"):
    w = os.path.join(work, name)
    for stage in (["signatures", "--input", input_path, *flags], ["buckets"], ["clusters"]):
        subprocess.run([binary, "dedup", stage[0], *stage[1:], "--work", w]
                       + (["--progress", "none"] if stage[0] == "signatures" else []),
                       check=True, capture_output=True)
    raw = open(os.path.join(w, "clusters", "remove.dups"), "rb").read()
    head = 16 + struct.unpack_from("<I", raw, 12)[0]
    members = {}
    removed = 0
    for i in range(head, len(raw) - 8, 20):
        _, doc, _, kept, _ = struct.unpack_from("<5I", raw, i)
        members[doc] = kept
        members[kept] = kept
        removed += 1
    return clusters_from(members), removed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    shutil.rmtree(args.work, ignore_errors=True)
    input_dir = os.path.join(args.work, "input")
    os.makedirs(input_dir)
    docs, pairs = corpus(args.inputs, args.passages)
    path = os.path.join(input_dir, "docs.jsonl")
    write_jsonl(docs, path)
    signer = MinhashDedupSignature(os.path.join(args.work, "unused"))
    shingles = [set(signer.get_shingles(d["text"]).flatten().tolist()) for d in docs]
    sims = sorted(jaccard(shingles[a], shingles[b]) for a, b in pairs)
    print(f"{len(docs)} documents, {len(pairs)} pairs; pair Jaccard from {sims[0]:.2f} to {sims[-1]:.2f}, "
          f"{sum(s >= THRESHOLD for s in sims)} at or above {THRESHOLD:.3f}\n")
    print("| dedup (14 bands × 8 rows, 5-grams) | precision | recall | documents removed |")
    print("|---|---|---|---|")
    dt = score("datatrove 0.10", *run_datatrove(args.work, input_dir), pairs, shingles)
    rs = score("curate", *run_curate(args.curate, args.work, path), pairs, shingles)
    print("\nsame precision and recall" if dt == rs else "\nprecision or recall differ")
    print("\n| curate SimHash (5-grams) | precision | recall | documents removed |")
    print("|---|---|---|---|")
    for distance, blocks in [(3, 6), (6, 8), (10, 12), (14, 16)]:
        flags = ["--method", "simhash", "--max-distance", str(distance), "--blocks", str(blocks)]
        score(f"distance {distance}, {blocks} blocks", *run_curate(args.curate, args.work, path, flags,
                                                                    f"sim-{distance}"), pairs, shingles)


if __name__ == "__main__":
    main()
