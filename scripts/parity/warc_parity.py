#!/usr/bin/env python3
"""curate's WARC/WET reader against warcio on the same files: the same
records become documents, with the same ids, URLs, dates, payload types and
decoded payloads (warcio's content_stream: de-chunked, gzip, deflate and
Brotli undone), byte for byte when they are UTF-8, by length when curate
converts them from another charset.

    python3 scripts/parity/warc_parity.py --curate TARGET/release/curate [FILE.warc.gz ...]
    python3 scripts/parity/warc_parity.py --curate ... --from-html ../shared/corpora/html

With --from-html, first writes a WARC of every page there, each served a
different way (plain, chunked, gzip, deflate, Brotli, chunked and gzip), and
checks that too; then cuts it short at several places and checks that the
documents before each cut are kept. Needs warcio, brotli and zstandard.
(warcio 1.7 fails on Brotli bodies with the current brotli package; those
are decompressed here with brotli itself.)
"""
import argparse
import gzip
import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import brotli
import zstandard
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HTML_TYPES = {"text/html", "application/xhtml+xml"}


def mime(value):
    return (value or "").split(";")[0].strip().lower()


def warcio_docs(path: Path) -> list:
    docs = []
    with open(path, "rb") as f:
        try:
            for r in ArchiveIterator(f):
                kind = r.rec_type
                if kind == "conversion":
                    body = r.content_stream().read()
                    ctype = r.rec_headers.get_header("Content-Type") or "text/plain"
                elif kind == "response":
                    declared = r.rec_headers.get_header("WARC-Identified-Payload-Type")
                    declared = mime(declared) if declared else (
                        mime(r.http_headers.get_header("Content-Type")) if r.http_headers and
                        r.http_headers.get_header("Content-Type") else None)
                    if declared and declared not in HTML_TYPES:
                        continue
                    try:
                        body = r.content_stream().read()
                    except AttributeError:
                        # warcio 1.7 cannot drive the brotli package's
                        # decompressor (no unused_data): undo Brotli here.
                        body = brotli.decompress(r.raw_stream.read())
                    ctype = declared or "text/html"
                else:
                    continue
                # A UTF-8 payload must come out byte for byte: compare digests.
                try:
                    digest = hashlib.sha1(body.decode("utf-8").encode()).hexdigest()
                except UnicodeDecodeError:
                    digest = None
                docs.append((r.rec_headers.get_header("WARC-Record-ID"), r.rec_headers.get_header("WARC-Target-URI"),
                             r.rec_headers.get_header("WARC-Date"), ctype, len(body), digest))
        except Exception as e:  # a cut file: what came before stands
            print(f"  warcio stops in {path.name}: {type(e).__name__}")
    return docs


def curate_docs(curate: str, path: Path, work: Path, n: int) -> tuple:
    out = work / f"out-{n}"
    (work / "p.toml").write_text(f'[input]\npath = "{path}"\n[[step]]\ntype = "length"\nmin_chars = 0\n'
                                 f'[output]\npath = "{out}"\nformat = "jsonl"\n')
    run = subprocess.run([curate, "run", str(work / "p.toml"), "--progress", "none"], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"curate run failed on {path}: {run.stderr}")
    docs = []
    for file in sorted(out.glob("*.jsonl.zst")):
        text = zstandard.ZstdDecompressor().stream_reader(open(file, "rb")).read().decode()
        # JSON Lines end lines with \n alone; texts may hold other line breaks (U+2028).
        for line in filter(None, text.split("\n")):
            d = json.loads(line)
            docs.append((d["warc_record_id"], d["url"], d["date"], d["content_type"], d["html_length"],
                         hashlib.sha1(d["text"].encode()).hexdigest()))
    stats = json.load(open(out / "stats.json"))
    return docs, stats


def make_warc(html_dir: Path, path: Path, rng: random.Random) -> None:
    truth = json.load(open(html_dir / "ground-truth.json"))
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, page in enumerate(sorted(truth)):
            html = gzip.decompress((html_dir / f"{page}.html.gz").read_bytes())
            way = i % 6
            headers = [("Content-Type", rng.choice(["text/html; charset=utf-8", "text/html", "TEXT/HTML"]))]
            body = html
            if way in (1, 5):
                body = gzip.compress(html)
                headers.append(("Content-Encoding", "gzip"))
            elif way == 2:
                body = zlib.compress(html)
                headers.append(("Content-Encoding", "deflate"))
            elif way == 3:
                body = brotli.compress(html)
                headers.append(("Content-Encoding", "br"))
            if way in (4, 5):
                body = b"".join(b"%x\r\n" % len(body[j:j + 3000]) + body[j:j + 3000] + b"\r\n"
                                for j in range(0, len(body), 3000)) + b"0\r\n\r\n"
                headers.append(("Transfer-Encoding", "chunked"))
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            extra = {"WARC-Identified-Payload-Type": "text/html"} if rng.random() < 0.5 else {}
            w.write_record(w.create_warc_record(truth[page]["url"], "response", payload=io.BytesIO(body),
                                                http_headers=http, warc_headers_dict=extra))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--from-html", type=Path)
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = list(args.files)
        if args.from_html:
            big = work / "pages.warc.gz"
            make_warc(args.from_html, big, random.Random(1))
            files.append(big)
            data = big.read_bytes()
            for cut in (len(data) // 3, len(data) // 2 + 17, len(data) - 5):
                part = work / f"cut-{cut}.warc.gz"
                part.write_bytes(data[:cut])
                files.append(part)
        for n, path in enumerate(files):
            theirs = warcio_docs(path)
            ours, stats = curate_docs(args.curate, path, work, n)
            # Payloads in other charsets are compared by length: curate converts them to UTF-8.
            ours = [o if t[5] is not None else o[:5] + (None,) for o, t in zip(ours, theirs)] + ours[len(theirs):]
            errors = stats.get("error_docs", 0)
            same = ours == theirs
            cut = path.name.startswith("cut-")
            if cut and not same:
                # warcio yields the record the cut runs through, short; curate
                # counts it as an error instead. Everything before must agree.
                same = ours == theirs[:len(ours)] and len(theirs) - len(ours) == 1 and errors == 1
            print(f"{path.name}: warcio {len(theirs)} documents, curate {len(ours)} ({errors} errors): "
                  f"{'same' if same else 'DIFFERENT'}{' before the cut' if cut else ''}")
            if not same:
                failures += 1
                for a, b in zip(theirs, ours):
                    if a != b:
                        print(f"  warcio {a}\n  curate {b}")
                        break
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
