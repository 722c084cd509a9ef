#!/usr/bin/env python3
"""curate's url_filter step against datatrove's URLFilter on the same
URLs and list files: every document must get the same decision and the
same reason.

    python3 scripts/parity/url_filter_parity.py --curate TARGET/release/curate [--urls 20000]

Makes a corpus of URLs as varied as the web's (schemes or none, userinfo,
ports, IPv4 and IPv6 hosts, IDN and punycode labels, every kind of public
suffix including wildcard rules and their exceptions, private suffixes,
mixed case, trailing dots, Unicode full stops, paths with banned and
soft-banned words) and list files (with comments and an empty line, as
real lists have), then runs both. datatrove's tldextract is pointed at its
bundled suffix list snapshot, as it uses offline; curate bundles the same.
Needs datatrove, tldextract, pyahocorasick and zstandard.
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import zstandard

from datatrove.data import Document
from datatrove.pipeline.filters import URLFilter


def corpus(n: int, rng: random.Random) -> list:
    suffixes = ["com", "org", "co.uk", "ac.uk", "uk", "de", "fr", "jp", "co.jp", "kobe.jp", "city.kobe.jp",
                "ck", "www.ck", "er", "bd", "com.au", "github.io", "blogspot.com", "appspot.com", "xn--p1ai", "рф",
                "COM", "Co.Uk", "example", "local", "", "s3.amazonaws.com", "xn--mgbh0fb", "中国", "gov.br", "nom.br"]
    domains = ["example", "Example", "spam", "casino-world", "bücher", "xn--bcher-kva", "news", "shop", "a",
               "free-porn", "my_site", "x1", "BLOCKED", "blocked", "ok", "wiki"]
    subs = ["", "www", "WWW", "blog", "a.b", "shop.eu", "m", "xn--80ak6aa92e"]
    words = ["index", "casino", "Casino", "free", "win", "money", "porn", "xxx", "sexy", "news", "2024", "a-b",
             "hello_world", "café", "%20", "viagra", "poker", "bet"]
    urls = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.05:
            host = f"{rng.randint(0, 300)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        elif kind < 0.07:
            host = rng.choice(["[::1]", "[2001:db8::1]", "[fe80::1%eth0]", "[not:ipv6]"])
        else:
            parts = [p for p in [rng.choice(subs), rng.choice(domains), rng.choice(suffixes)] if p]
            sep = "." if rng.random() < 0.97 else rng.choice(["\u3002", "\uff0e", "\uff61"])
            host = sep.join(parts)
            if rng.random() < 0.03:
                host += "."
        scheme = rng.choice(["https://", "http://", "//", "", "ftp://", "HTTPS://", "git+ssh://"])
        auth = rng.choice(["", "", "", "user@", "user:pw@"])
        port = rng.choice(["", "", "", ":8080", ":443"])
        path = "/".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
        query = rng.choice(["", "", "?q=free+casino", "?a=1&b=win", "#frag", "?x=porn#y"])
        tail = rng.choice(["", "/", "/"])
        urls.append(f"{scheme}{auth}{host}{port}/{path}{query}" if path else f"{scheme}{auth}{host}{port}{tail}{query}")
    return urls


LISTS = {
    "domains": "# domains\nspam.com\nwww.spam.com\nblocked.co.uk\ncasino-world.de\nbücher.de\nexample.github.io\n"
               "a.b.shop.kobe.jp\n\nshop.city.kobe.jp\n",
    "urls": "# urls\nhttps://example.com/index\nhttp://ok.org/\n",
    "banned_words": "# words\nporn\nviagra\ncasino\n",
    "banned_subwords": "xxx\nsexy\n",
    "soft_banned_words": "free\nwin\nmoney\nbet\npoker\n\n",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--urls", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    import tldextract

    rng = random.Random(args.seed)
    urls = corpus(args.urls, rng)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, text in LISTS.items():
            (tmp / f"{name}.txt").write_text(text)
        opened = {name: open(tmp / f"{name}.txt") for name in LISTS}
        f = URLFilter(extra_domains=opened["domains"], extra_urls=opened["urls"],
                      banned_words=opened["banned_words"], banned_subwords=opened["banned_subwords"],
                      soft_banned_words=opened["soft_banned_words"], use_integrated_lists=False)
        f.tldextractor = tldextract.TLDExtract(suffix_list_urls=())
        theirs = {}
        for i, url in enumerate(urls):
            out = f.filter(Document(text="x", id=str(i), metadata={"url": url}))
            theirs[str(i)] = "keep" if out is True else out[1]
        with open(tmp / "in.jsonl", "w") as out:
            for i, url in enumerate(urls):
                out.write(json.dumps({"id": str(i), "text": "x", "url": url}, ensure_ascii=False) + "\n")
        paths = "\n".join(f'{name}_path = "{tmp / (name + ".txt")}"' for name in LISTS)
        (tmp / "p.toml").write_text(f"""[input]
path = "{tmp / 'in.jsonl'}"
[[step]]
type = "url_filter"
{paths}
[output]
path = "{tmp / 'out'}"
format = "jsonl"
rejected = true
""")
        subprocess.run([args.curate, "run", str(tmp / "p.toml"), "--progress", "none"], check=True)
        ours = {}
        for file in sorted((tmp / "out").rglob("*.jsonl.zst")):
            rejected = file.parent.name == "rejected"
            text = zstandard.ZstdDecompressor().stream_reader(open(file, "rb")).read().decode("utf-8")
            for line in filter(None, text.split("\n")):
                d = json.loads(line)
                ours[d["id"]] = d["rejected_reason"] if rejected else "keep"
    same = sum(ours.get(k) == v for k, v in theirs.items())
    print(f"{same}/{len(theirs)} URLs with the same decision and reason")
    reasons = {}
    for v in theirs.values():
        reasons[v] = reasons.get(v, 0) + 1
    print("datatrove's reasons:", dict(sorted(reasons.items())))
    for k, v in theirs.items():
        if ours.get(k) != v:
            print(f"  {urls[int(k)]!r}: datatrove {v}, curate {ours.get(k)}")
    sys.exit(0 if same == len(theirs) else 1)


if __name__ == "__main__":
    main()
