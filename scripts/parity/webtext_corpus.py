#!/usr/bin/env python3
"""A web-like parity corpus: text as the web and mail have it, which books
and speeches rarely exercise (URLs, e-mail addresses, paths and file names,
code, tables, bullet and quote markers, emoji, replacement characters,
tabs and odd spaces, HTML remnants).

Three sources, each deterministic:

- the 102 pages of ../shared/corpora/html: every page's whole visible text
  (menus, bylines, footers), and its hand-made article body;
- Debian's documentation on this machine (/usr/share/doc: changelogs,
  copyright files, READMEs), a few kilobytes of each;
- mailing-list messages generated from Moby-Dick's sentences with quoted
  replies, signatures, addresses, links, code, tables and damaged text;
- glued strings: short runs of the atoms the word split rules look at
  (spaCy's exception forms, emoticons, currency signs, units, periods and
  ellipses, quotes, symbols, odd spaces), stuck together without spaces,
  where the affix rules, the URL rule and the exception matcher meet.

    webtext_corpus.py --out webtext.jsonl [--shared ../shared/corpora] [--docs 400] [--mail 3000] [--glued 3000]
"""
import argparse
import gzip
import html.parser
import json
import os
import random
import re


class PageText(html.parser.HTMLParser):
    """The text a browser would show, one line per block, scripts and styles left out."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header",
              "footer", "nav", "ul", "ol", "table", "blockquote", "pre", "td", "th", "figcaption", "dt", "dd"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "noscript", "svg"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith(("http", "mailto:", "www.")) and len(self.parts) % 7 == 0:
                self.parts.append(f" {href} ")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "svg"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    def text(self):
        lines = (re.sub(r"[ \t\r\f\v]+", " ", l).strip() for l in "".join(self.parts).split("\n"))
        return "\n".join(l for l in lines if l)


def pages(shared):
    folder = os.path.join(shared, "html")
    truth = json.load(open(os.path.join(folder, "ground-truth.json"), encoding="utf-8"))
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".html.gz"):
            continue
        key = name[: -len(".html.gz")]
        parser = PageText()
        parser.feed(gzip.open(os.path.join(folder, name), "rt", encoding="utf-8", errors="replace").read())
        yield f"page-{key[:12]}", parser.text()
        if key in truth:
            yield f"article-{key[:12]}", truth[key]["articleBody"]


def debian_docs(limit, rng):
    found = []
    for package in sorted(os.listdir("/usr/share/doc")):
        folder = os.path.join("/usr/share/doc", package)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.startswith(("changelog", "copyright", "README", "NEWS")):
                found.append(os.path.join(folder, name))
    rng.shuffle(found)
    for path in sorted(found[:limit]):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                text = f.read(6000)
        except (OSError, EOFError):
            continue
        if text.strip():
            yield "doc-" + path[len("/usr/share/doc/"):].replace("/", "-"), text


def moby_sentences(shared):
    import zstandard

    raw = zstandard.ZstdDecompressor().stream_reader(open(os.path.join(shared, "moby_dick.jsonl.zst"), "rb")).read()
    text = " ".join(json.loads(l)["text"] for l in raw.decode("utf-8").splitlines() if l.strip())
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 20 < len(s) < 300]


NAMES = ["ann", "bo.li", "cy-ru", "di_en", "ed+list", "fork-admin", "g.h.w", "m-a-r-y", "root", "x9"]
HOSTS = ["xent.com", "example.org", "mail.deep-eddy.com", "lists.debian.org", "sub.domain.co.uk", "uni-bonn.de",
         "localhost", "10.0.0.7", "192.168.1.20", "8.8.8.8", "bücher.de", "xn--bcher-kva.de", "EXAMPLE.COM", "a.io"]
PATHS = ["", "/", "/~cwg/", "/wiki/Moby-Dick", "/a/b.html", "/search?q=whale&lang=en", "/p/123#top", "/dl/x.tar.gz",
         "/index.php?id=7&x=%20y", "/Path/With.Caps/", ":8080/api/v1", "/(parens)_x", "/ending."]
SCHEMES = ["http://", "https://", "ftp://", "", "www.", "http://www.", "https://www.", "git+ssh://", "file://"]
WRAPS = [("", ""), ("(", ")"), ("<", ">"), ('"', '"'), ("[", "]"), ("", "."), ("", ","), ("", "),"), ("'", "'"),
         ("«", "»"), ("“", "”"), ("", "!"), ("", "?"), ("", ":"), ("", ";"), ("", "..."), ("*", "*"), ("_", "_")]
FILES = ["README.md", "setup.py", "libfoo-1.2.3.tar.gz", "C:\\Windows\\system32\\drv.sys", "~/bin/run.sh",
         "/etc/apt/sources.list", "./configure", "file_v2.final.DOCX", "résumé.pdf", "a.b.c.d.e", "..hidden", "x.y"]
CODE = ["a->b", "x == y", "foo(bar);", "#include <stdio.h>", "if (x < 3 && y >= 4) {", "return i++;", "a[i][j]=0",
        "std::vector<int>", "$HOME/.bashrc", "`ls -la`", "obj.method().chain()", "x=1;y=2", "//comment", "/* c */",
        "def f(x): return x**2", "0xFF", "1e-9", "3.14159", "i += 1", "@decorator", "key: value", "--flag=on"]
MARKS = ["> ", ">> ", "> > ", "* ", "- ", "• ", "1. ", "(a) ", "# ", "## ", "| ", "\t", "    ", "-- ", "=> ", "~ "]
ODD = ["\ufffd", "\u00a0", "\u200b", "\t", "\u2009", "\u3000", "Â ", "â€™", "Ã©", "\ufeff", "\u00ad", "…"]
EMOJI = ["🙂", "👍🏽", "🇫🇷", "❤️", "🐳", "😂😂", ":-)", ";)", "<3", "¯\\_(ツ)_/¯", "(╯°□°）╯︵┻━┻"]
NUMBERS = ["$5.99", "€10", "10USD", "50%", "3rd", "2024-01-05", "05/01/2024", "10:30am", "+1-555-0100", "v1.2.3",
           "2.0-rc1", "#12345", "(Closes: #1029751)", "1,000,000", "-40°C", "5km", "10x", "9am-5pm", "ISBN 978-3-16"]
HTMLISH = ["&nbsp;", "&amp;", "<br/>", "<p>", "</div>", "&lt;tag&gt;", "&#8217;", "<a href=\"x\">", "&quot;"]


EXCEPTIONS = os.path.join(os.path.dirname(__file__), "../../filters/data/spacy_en_exceptions.tsv")
ATOMS = ["a", "b", "Z", "é", "ж", "Ω", "日", "ب", "x", "1", "2", "9", "0", ".", "..", "...", "…", "……", ",", ":", ";",
         "-", "--", "–", "—", "'", "’", "'s", "’s", "\"", "«", "»", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\",
         "|", "_", "#", "@", "&", "*", "+", "=", "%", "^", "~", "`", "!", "?", "$", "US$", "C$", "A$", "₦", "₵", "€",
         "£", "¥", "﷼", "km", "kg", "mph", "тб", "тбكم", "°C", "°", "²", "™", "©", "→", "↑", "−", "✓", "☺", "🙂", "🏽",
         "\ufffd", "\u2009", "\u00a0", "\u3008", "\u2329", "\u232a", ".com", "www.", "http://", "x.io", "10.0.0.1"]


def glued(rng, forms):
    chunks = []
    for _ in range(rng.randrange(1, 8)):
        parts = []
        for _ in range(rng.randrange(1, 6)):
            parts.append(rng.choice(forms) if rng.random() < 0.35 else rng.choice(ATOMS))
        chunks.append("".join(parts))
    return " ".join(chunks)


def address(rng):
    return rng.choice(NAMES) + "@" + rng.choice([h for h in HOSTS if not h[0].isdigit()])


def link(rng):
    scheme = rng.choice(SCHEMES)
    host = rng.choice(HOSTS)
    if scheme.endswith("www.") and host.startswith(("www", "1", "8", "local")):
        host = "example.net"
    return scheme + host + rng.choice(PATHS)


def piece(rng, sentences):
    kind = rng.randrange(12)
    if kind == 0:
        return "mailto:" + address(rng) if rng.random() < 0.3 else address(rng)
    if kind == 1:
        return link(rng)
    if kind == 2:
        return rng.choice(FILES)
    if kind == 3:
        return rng.choice(CODE)
    if kind == 4:
        return rng.choice(EMOJI)
    if kind == 5:
        return rng.choice(NUMBERS)
    if kind == 6:
        return rng.choice(HTMLISH)
    if kind == 7:
        # A word with damage inside: a replacement character or mojibake.
        word = rng.choice(rng.choice(sentences).split())
        at = rng.randrange(len(word) + 1)
        return word[:at] + rng.choice(ODD) + word[at:]
    if kind == 8:
        return rng.choice(["@" + rng.choice(NAMES), "#" + rng.choice(["whale", "MobyDick", "2024", "a_b"])])
    words = rng.choice(sentences).split()
    start = rng.randrange(len(words))
    return " ".join(words[start:start + rng.randrange(1, 6)])


def mail(rng, sentences):
    lines = []
    sender = address(rng)
    lines.append(f"From: {rng.choice(['Ann Lee', 'Bo', 'Cy R.', ''])} <{sender}>")
    lines.append(f"Subject: Re: [list] {rng.choice(sentences)[:50]}")
    for _ in range(rng.randrange(3, 12)):
        mark = rng.choice(MARKS) if rng.random() < 0.4 else ""
        parts = []
        for _ in range(rng.randrange(1, 8)):
            open_, close = rng.choice(WRAPS) if rng.random() < 0.3 else ("", "")
            parts.append(open_ + piece(rng, sentences) + close)
        sep = rng.choice([" ", " ", " ", "  ", "\t", " | ", ", ", " - ", " -- ", " / "])
        lines.append(mark + sep.join(parts))
    if rng.random() < 0.6:
        lines += ["-- ", f"{rng.choice(['Ann', 'Bo'])} | {address(rng)} | {link(rng)}"]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared/corpora"))
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--mail", type=int, default=3000)
    ap.add_argument("--glued", type=int, default=3000)
    args = ap.parse_args()
    rng = random.Random(13)
    sentences = moby_sentences(args.shared)
    n = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for key, text in list(pages(args.shared)) + list(debian_docs(args.docs, rng)):
            out.write(json.dumps({"id": key, "text": text}, ensure_ascii=False) + "\n")
            n += 1
        for i in range(args.mail):
            out.write(json.dumps({"id": f"mail-{i:05d}", "text": mail(rng, sentences)}, ensure_ascii=False) + "\n")
            n += 1
        forms = [l.split("\t")[0] for l in open(EXCEPTIONS, encoding="utf-8") if l.strip() and not l.startswith("# ")]
        for i in range(args.glued):
            out.write(json.dumps({"id": f"glued-{i:05d}", "text": glued(rng, forms)}, ensure_ascii=False) + "\n")
            n += 1
    print(f"{n} documents in {args.out}")


if __name__ == "__main__":
    main()
