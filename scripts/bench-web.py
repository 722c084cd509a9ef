#!/usr/bin/env python3
"""Web ingestion speed, side by side, one core each: curate's WARC reader
against warcio, and curate's html_extract step against trafilatura 2.0
(favor_precision, as datatrove runs it), on the article-extraction
benchmark pages.

    python3 scripts/bench-web.py --curate TARGET/release/curate --pages ../shared/corpora/html [--copies 10]

The pages are written --copies times into a WARC (gzip'd record by record)
and a JSON Lines file. curate runs with one thread: `curate run` of a
`length` step that drops every page (reading: decompressing, parsing the
records and HTTP, decoding to UTF-8; nothing written) or of `html_extract`
(extraction, its time includes writing the output). warcio iterates the
records and reads each payload; trafilatura extracts each page. Medians of
three rounds. Needs warcio and trafilatura (with lxml_html_clean).
"""
import argparse
import gzip
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import trafilatura
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def curate_seconds(curate: str, work: Path, source: Path, step: str) -> float:
    out = work / f"out-{time.monotonic_ns()}"
    (work / "p.toml").write_text(f'[input]\npath = "{source}"\n[[step]]\n{step}\n[output]\npath = "{out}"\n'
                                 f'format = "jsonl"\n[run]\nthreads = 1\n')
    t = time.perf_counter()
    subprocess.run(["taskset", "-c", "0", curate, "run", str(work / "p.toml"), "--progress", "none"], check=True,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--pages", type=Path, required=True)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    truth = json.load(open(args.pages / "ground-truth.json"))
    pages = {k: gzip.decompress((args.pages / f"{k}.html.gz").read_bytes()) for k in truth}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        warc, jsonl = work / "pages.warc.gz", work / "pages.jsonl"
        with open(warc, "wb") as f, open(jsonl, "w") as j:
            w = WARCWriter(f, gzip=True)
            for c in range(args.copies):
                for k, html in pages.items():
                    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
                    w.write_record(w.create_warc_record(truth[k]["url"] + f"?c={c}", "response",
                                                        payload=io.BytesIO(html), http_headers=http))
                    j.write(json.dumps({"id": f"{k}-{c}", "text": html.decode("utf-8"), "url": truth[k]["url"]}) + "\n")
        n = len(pages) * args.copies
        mb = sum(len(h) for h in pages.values()) * args.copies / 1e6
        read_ours, read_theirs, ex_ours, ex_theirs = [], [], [], []
        for _ in range(args.rounds):
            # A step that drops every page: reading (and decoding) alone, no output written.
            read_ours.append(curate_seconds(args.curate, work, warc, 'type = "length"\nmax_chars = 1'))
            t = time.perf_counter()
            with open(warc, "rb") as f:
                for r in ArchiveIterator(f):
                    if r.rec_type == "response":
                        r.content_stream().read()
            read_theirs.append(time.perf_counter() - t)
            ex_ours.append(curate_seconds(args.curate, work, jsonl, 'type = "html_extract"'))
            t = time.perf_counter()
            for html in pages.values():
                for _ in range(args.copies):
                    trafilatura.extract(html.decode("utf-8"), favor_precision=True)
            ex_theirs.append(time.perf_counter() - t)
        m = statistics.median
        print(f"{n} pages, {mb:.1f} MB of HTML, one core")
        print(f"WARC reading: curate {mb / m(read_ours):.1f} MB/s, warcio {mb / m(read_theirs):.1f} MB/s, "
              f"ratio {m(read_theirs) / m(read_ours):.2f}")
        print(f"extraction: curate html_extract {n / m(ex_ours):.1f} pages/s ({mb / m(ex_ours):.1f} MB/s), "
              f"trafilatura {n / m(ex_theirs):.1f} pages/s ({mb / m(ex_theirs):.1f} MB/s), "
              f"ratio {m(ex_theirs) / m(ex_ours):.2f}")


if __name__ == "__main__":
    main()
