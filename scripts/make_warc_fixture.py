#!/usr/bin/env python3
"""Writes fixtures/warc/: a small WARC and WET as Common Crawl writes them
(one gzip member per record), made with warcio from four real pages of the
article-extraction benchmark (../shared/corpora/html, MIT licence) and
records made here for what the reader must handle:

- the real pages as `response` records (one chunked and gzip-encoded, one
  Brotli-encoded when brotli is installed, else deflate);
- pages in Latin-1 (declared in HTTP), windows-1252 (declared in a <meta>),
  Shift-JIS and GBK (neither declared: detected);
- a response without any content type (read as HTML);
- what is not a document: warcinfo, request, metadata, revisit, an image;
- WET `conversion` records, in a file of their own.

    python3 scripts/make_warc_fixture.py   # needs warcio
"""
import gzip
import io
import json
import zlib
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT.parent / "shared/corpora/html"
PAGES = ["3cb22bfabed8de715c0813a7bb5052363c96bd71ccce3bb2dfb3ab9d1d7a9bbc",
         "23aaecd14171f96cfd201a8a46666097e286ad71f74f29347a78c5ecba50da1e",
         "0dd1357045727799a447563fd8851f4ebe79f042073ea16991a9b67aa595f81a",
         "33fe2471fd553c6570f93997f208b4f39bf30be5947c3cfa620ee8eff3355ab9"]


def response(w, url, body, headers, payload_type="text/html", record_id=None):
    http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
    extra = {"WARC-Identified-Payload-Type": payload_type} if payload_type else {}
    if record_id:
        extra["WARC-Record-ID"] = record_id
    rec = w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                               warc_headers_dict=extra)
    w.write_record(rec)


def chunked(data: bytes, size: int = 4000) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def main() -> None:
    truth = json.load(open(HTML / "ground-truth.json"))
    out = ROOT / "fixtures/warc"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pages.warc.gz", "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record("pages.warc.gz", {"software": "curate fixtures", "format": "WARC 1.1"}))
        for i, page in enumerate(PAGES):
            html = gzip.decompress((HTML / f"{page}.html.gz").read_bytes())
            url = truth[page]["url"]
            req = w.create_warc_record(url, "request", payload=io.BytesIO(b""),
                                       http_headers=StatusAndHeaders(f"GET / HTTP/1.1", [("Host", "x")], is_http_request=True))
            w.write_record(req)
            if i == 1:
                body = chunked(gzip.compress(html))
                headers = [("Content-Type", "text/html; charset=utf-8"), ("Transfer-Encoding", "chunked"),
                           ("Content-Encoding", "gzip")]
            elif i == 2:
                try:
                    import brotli
                    body, enc = brotli.compress(html), "br"
                except ImportError:
                    body, enc = zlib.compress(html), "deflate"
                headers = [("Content-Type", "text/html"), ("Content-Encoding", enc)]
            else:
                body, headers = html, [("Content-Type", "text/html; charset=UTF-8")]
            response(w, url, body, headers)
            meta = w.create_warc_record(url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\r\n"),
                                        warc_content_type="application/warc-fields")
            w.write_record(meta)
        response(w, "http://example.fr/latin1", "<html><body><p>Café crème à la française, déjà vu.</p></body></html>"
                 .encode("latin-1"), [("Content-Type", "text/html; charset=ISO-8859-1")])
        response(w, "http://example.com/cp1252",
                 b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head>"
                 b"<body><p>\x93Smart quotes\x94 \x96 and a euro: \x80 5</p></body></html>",
                 [("Content-Type", "text/html")])
        response(w, "http://example.jp/sjis", "<html><body><p>これは日本語のウェブページです。文字コードはシフトJISで、宣言されていません。"
                 "東京都の天気は晴れ、気温は二十度です。</p></body></html>".encode("shift_jis"), [("Content-Type", "text/html")])
        response(w, "http://example.cn/gbk", "<html><body><p>这是一个中文网页，编码是GBK，没有声明字符集。北京今天的天气很好，"
                 "气温二十度，适合出去散步。</p></body></html>".encode("gbk"), [("Content-Type", "text/html")], payload_type=None)
        response(w, "http://example.org/untyped", b"<p>no content type at all</p>", [], payload_type=None)
        response(w, "http://example.org/logo.png", b"\x89PNG\r\n\x1a\n....", [("Content-Type", "image/png")],
                 payload_type="image/png")
        revisit = w.create_revisit_record("http://example.org/untyped", digest="sha1:AAAA", refers_to_uri="x",
                                          refers_to_date="2024-01-01T00:00:00Z")
        w.write_record(revisit)
    with open(out / "pages.warc.wet.gz", "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record("pages.warc.wet.gz", {"software": "curate fixtures"}))
        for page in PAGES[:2]:
            text = truth[page]["articleBody"][:2000]
            rec = w.create_warc_record(truth[page]["url"], "conversion", payload=io.BytesIO(text.encode("utf-8")),
                                       warc_content_type="text/plain")
            w.write_record(rec)
    print(sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main()
