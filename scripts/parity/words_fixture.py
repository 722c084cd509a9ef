#!/usr/bin/env python3
"""Write fixtures/words/spacy_web.jsonl: web-like texts with the words
datatrove's English split_into_words (spaCy 3.8) gives them, which the
filters crate's tests compare the Rust word split with.

The texts: the hard cases found while bringing the split to parity on web
text (each a minimal text that once split differently), then a
deterministic sample of the web-like corpus (webtext_corpus.py): excerpts
of pages and Debian documents, generated mail, glued strings.

    words_fixture.py WEBTEXT.jsonl [--out fixtures/words/spacy_web.jsonl]
"""
import argparse
import json
import os
import random

# Minimal texts that split differently before the fixes they name.
CASES = [
    "see http://www.EXAMPLE.COM/(parens)_x and ftp://example.org/index",  # URL_MATCH port
    "mail bo.li@bücher.de, 192.168.1.20/wiki/Moby-Dick or 10.0.0.7:8080/api",
    "a\ufffdb −40 ↑x → y 👍🏽 ok",  # spaCy's own symbol class
    "(╯°□°）╯︵┻━┻. and (╯°□°）╯︵┻━┻), ><(((*> :-))) (._.)",  # exceptions of many pieces
    "|session|. a|. im. h\u2009im. x im.",  # `|` before a period; `im` is no pattern
    ")-:..A m..:-> > :(+ > :( z > :( w",  # patterns, and runs across one space
    "x…… 1…… ………  ,……",  # "……" is a suffix of its own
    "9US$ 2A$ 1C$.. ₦500 500₦ ₵3 ﷼5 5₾",  # spaCy's whole currency list
    "5тб 5тбكم 3كم",  # spaCy's unit list, missing comma included
    "a\x1cb c\x1fd. e\x1ef",  # Python's whitespace
    "〈quote〉. \u2329angle\u232a.",  # both pairs of angle brackets
]


def excerpt(text, rng, size=800):
    if len(text) <= size:
        return text
    start = rng.randrange(len(text) - size)
    return text[start:start + size]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("webtext")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../fixtures/words/spacy_web.jsonl"))
    args = ap.parse_args()
    from datatrove.utils.text import split_into_words

    rng = random.Random(13)
    docs = [json.loads(l) for l in open(args.webtext, encoding="utf-8") if l.strip()]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["id"].split("-")[0], []).append(d["text"])
    texts = list(CASES)
    for kind, count in [("page", 15), ("article", 10), ("doc", 15), ("mail", 100), ("glued", 300)]:
        pool = by_kind.get(kind, [])
        for text in rng.sample(pool, min(count, len(pool))):
            texts.append(excerpt(text, rng))
    with open(args.out, "w", encoding="utf-8") as out:
        for text in texts:
            out.write(json.dumps({"text": text, "words": split_into_words(text, "en")}, ensure_ascii=False) + "\n")
    print(f"{len(texts)} texts in {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
