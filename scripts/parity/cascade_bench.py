#!/usr/bin/env python3
"""The English cascade (Gopher quality, Gopher repetition, C4, FineWeb, then
PII redaction) in datatrove and in curate, side by side on the same
documents, one core each; prints both times and the ratio, and how many
documents each keeps.

datatrove's language filter downloads a fastText model at run time, which
this machine cannot, so language ID is left out of both sides. datatrove's
`PIIFormatter` replaces e-mail and public IP addresses; curate's `pii` step
is given the same two kinds for the ratio, and is timed again with all its
kinds (phones, cards, IBANs, SSNs and secrets too) on a row of its own.
Times are CPU seconds (user and system): curate writes its output on a
thread of its own, so its wall time would hide some of the work. curate runs
ten times, five before datatrove's run and five after, and the median is
reported: a run takes about a second, and this machine's timings vary by
ten to twenty percent over minutes.

    cascade_bench.py --curate BIN --work DIR FILE.jsonl[.zst] ...
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filters_parity import build_docs  # noqa: E402
from jsonl import read_jsonl, write_jsonl  # noqa: E402

STEPS = ["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality", "pii"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import PIIFormatter

    os.makedirs(args.work, exist_ok=True)
    docs = build_docs(args.inputs)
    path = os.path.join(args.work, "docs.jsonl")
    mb = write_jsonl(docs, path)

    def run_curate(name, pii_options):
        out = os.path.join(args.work, "out-" + name)
        pipeline = os.path.join(args.work, name + ".toml")
        steps = "".join(f'[[step]]\ntype = "{s}"\n' + (pii_options if s == "pii" else "") for s in STEPS)
        with open(pipeline, "w") as f:
            f.write(f'[input]\npath = "{path}"\n' + steps + f'[output]\npath = "{out}"\nformat = "jsonl"\n')
        def cpu():
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime

        runs = []
        for _ in range(5):
            subprocess.run(["rm", "-rf", out], check=True)
            c0, t0 = cpu(), time.perf_counter()
            subprocess.run([args.curate, "run", pipeline, "--threads", "1", "--progress", "none"], check=True, capture_output=True)
            runs.append((cpu() - c0, time.perf_counter() - t0))
        kept = json.load(open(os.path.join(out, "stats.json")))["kept_docs"]
        return runs, kept

    def median(runs):
        return sorted(runs)[len(runs) // 2]

    # curate runs before and after datatrove, so that a slow spell of the
    # machine during one of them does not decide the median.
    same_job, all_kinds = 'kinds = ["email", "ip"]\n', ""
    before_same, before_all = run_curate("same", same_job)[0], run_curate("all", all_kinds)[0]

    filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]
    pii = PIIFormatter()
    t0 = time.process_time()
    kept_py = 0
    for d in read_jsonl(path):  # reading is part of both sides
        doc = Document(text=d["text"], id=d["id"])
        if all(f.filter(doc) is True for f in filters):
            doc.text = pii.format(doc.text)
            kept_py += 1
    py = time.process_time() - t0

    after_same, kept_rs = run_curate("same", same_job)
    after_all, kept_all = run_curate("all", all_kinds)
    rs, rs_wall = median(before_same + after_same)
    rs_all, rs_all_wall = median(before_all + after_all)
    spread = sorted(cpu for cpu, _ in before_same + after_same)
    print(f"{len(docs)} documents, {mb:.1f} MB, one core each\n")
    print("| | CPU seconds | wall seconds | MB per CPU second | kept |")
    print("|---|---|---|---|---|")
    print(f"| datatrove 0.10 | {py:.1f} | | {mb / py:.2f} | {kept_py} |")
    print(f"| curate (PII: e-mail and IP, as datatrove) | {rs:.2f} | {rs_wall:.2f} | {mb / rs:.1f} | {kept_rs} |")
    print(f"| curate (PII: all seven kinds) | {rs_all:.2f} | {rs_all_wall:.2f} | {mb / rs_all:.1f} | {kept_all} |")
    print(f"\ncurate is {py / rs:.0f}x faster per core on the same job ({py / rs_all:.0f}x with all its PII kinds)")
    print(f"(curate's ten runs of the same job took {spread[0]:.2f} to {spread[-1]:.2f} CPU seconds)")


if __name__ == "__main__":
    main()
