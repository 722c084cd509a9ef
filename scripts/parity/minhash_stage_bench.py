#!/usr/bin/env python3
"""The MinHash signature stage, datatrove's against curate's, side by side
on the same JSON Lines file, one core each: datatrove's JsonlReader +
MinhashDedupSignature in a LocalPipelineExecutor (1 task, 1 worker; it
writes and sorts one file per bucket), and `curate dedup signatures
--threads 1` (one sorted file per unit and band). Both with datatrove's
default MinhashConfig. Prints both times and the ratio.

    minhash_stage_bench.py --curate BIN --work DIR FILE.jsonl[.zst] ...
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filters_parity import build_docs  # noqa: E402
from jsonl import write_jsonl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
    from datatrove.pipeline.readers import JsonlReader

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(os.path.join(args.work, "input"))
    docs = build_docs(args.inputs)
    path = os.path.join(args.work, "input", "docs.jsonl")
    mb = write_jsonl(docs, path)

    t0 = time.perf_counter()
    LocalPipelineExecutor(
        pipeline=[JsonlReader(os.path.join(args.work, "input")), MinhashDedupSignature(os.path.join(args.work, "dt"))],
        tasks=1, workers=1, logging_dir=os.path.join(args.work, "dt-logs"),
    ).run()
    py = time.perf_counter() - t0

    t0 = time.perf_counter()
    subprocess.run([args.curate, "dedup", "signatures", "--input", path, "--work", os.path.join(args.work, "rs"),
                    "--threads", "1", "--progress", "none"], check=True, capture_output=True)
    rs = time.perf_counter() - t0
    print(f"{len(docs)} documents, {mb:.1f} MB, one core each\n")
    print("| signature stage | seconds | MB/s |")
    print("|---|---|---|")
    print(f"| datatrove 0.10 (JsonlReader + MinhashDedupSignature) | {py:.1f} | {mb / py:.2f} |")
    print(f"| curate dedup signatures | {rs:.2f} | {mb / rs:.1f} |")
    print(f"\ncurate is {py / rs:.0f}x faster per core")
    # The same records, band by band: datatrove's (8 hashes, document index)
    # against curate's (8 hashes, unit, document index); one unit here.
    import struct
    same = 0
    for band in range(14):
        with open(os.path.join(args.work, "dt", f"bucket_{band:03d}", "00000.minhash.sig"), "rb") as f:
            raw = f.read()
        theirs = [struct.unpack_from("<8QI", raw, i) for i in range(0, len(raw), 68)]
        with open(os.path.join(args.work, "rs", "signatures", f"band-{band:03d}", "unit-000000.sig"), "rb") as f:
            raw = f.read()
        head = 16 + struct.unpack_from("<I", raw, 12)[0]
        ours = [struct.unpack_from("<8QII", raw, i)[:8] + struct.unpack_from("<8QII", raw, i)[9:]
                for i in range(head, len(raw) - 8, 72)]
        same += theirs == ours
    print(f"bands with identical sorted records: {same}/14")


if __name__ == "__main__":
    main()
