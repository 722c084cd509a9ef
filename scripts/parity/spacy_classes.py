"""Check the character classes and lists in filters/src/words.rs against
spaCy's own (spacy/lang/char_classes.py and punctuation.py, as English uses
them), element by element: the affix characters, punctuation, quotes,
currency, units and the symbol ranges. Exits non-zero on any difference.

    /tmp/pyvenv/bin/python scripts/parity/spacy_classes.py [--print-symbols]
"""
import pathlib
import re
import sys

import spacy
from spacy.lang import char_classes as cc

SOURCE = pathlib.Path(__file__).parents[2] / "filters/src/words.rs"


def single_chars(patterns):
    out = set()
    for p in patterns:
        t = re.sub(r"\\(.)", r"\1", p)
        if len(t) == 1 and len(p) <= 2:
            out.add(t)
    return out


def symbol_ranges():
    klass = re.compile("[" + cc._other_symbols + "]")
    ranges = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or not klass.match(chr(cp)):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def rust_unescape(s):
    s = re.sub(r"\\u\{([0-9A-Fa-f]+)\}", lambda m: chr(int(m.group(1), 16)), s)
    return re.sub(r"\\(.)", r"\1", s)


def rust_charset(text, name):
    m = re.search(r"const " + name + r": CharSet =\s*CharSet::new\(\s*\"((?:[^\"\\]|\\.)*)\"", text)
    return set(rust_unescape(m.group(1)))


def rust_strings(text, name):
    m = re.search(r"const " + name + r": &\[&str\] = &\[(.*?)\];", text, re.S)
    if m is None:
        return []
    body = re.sub(r"//[^\n]*", "", m.group(1))
    return [rust_unescape(s) for s in re.findall(r"\"((?:[^\"\\]|\\.)*)\"", body)]


def main():
    nlp = spacy.blank("en")
    prefixes, suffixes = nlp.Defaults.prefixes, nlp.Defaults.suffixes
    ranges = symbol_ranges()
    if "--print-symbols" in sys.argv:
        for lo, hi in ranges:
            print(f"(0x{lo:X}, 0x{hi:X}),")
        return 0
    text = SOURCE.read_text()
    symbols = set()
    for lo, hi in ranges:
        symbols.update(chr(c) for c in range(lo, hi + 1))
    table = text[text.index("const SYMBOLS") :]
    table = table[: table.index("];")]
    ours = [[int(a, 16), int(b, 16)] for a, b in re.findall(r"\((0x[0-9A-F]+), (0x[0-9A-F]+)\)", table)]

    currency = single_chars(cc.LIST_CURRENCY)
    checks = {
        "SYMBOLS": (ours, ranges),
        # `+` is a prefix only before a non-digit, a rule of its own.
        "PREFIX_CHARS": (rust_charset(text, "PREFIX_CHARS"), single_chars(prefixes) - {"+"} - symbols),
        "SUFFIX_CHARS": (rust_charset(text, "SUFFIX_CHARS"), single_chars(suffixes) - symbols),
        "PUNCT": (rust_charset(text, "PUNCT"), single_chars(cc.LIST_PUNCT)),
        "QUOTES": (rust_charset(text, "QUOTES"), single_chars(cc.LIST_QUOTES)),
        "CURRENCY": (rust_charset(text, "CURRENCY"), currency),
        "CURRENCY_WORDS": (
            set(rust_strings(text, "CURRENCY_WORDS")),
            {re.sub(r"\\(.)", r"\1", p) for p in cc.LIST_CURRENCY} - currency,
        ),
        "UNITS": (rust_strings(text, "UNITS"), cc.UNITS.split("|")),
    }
    bad = 0
    for name, (got, want) in checks.items():
        if got == want:
            print(f"{name}: matches spaCy ({len(want)})")
            continue
        bad += 1
        if isinstance(got, set):
            print(f"{name}: differs; missing {sorted(want - got)}, extra {sorted(got - want)}")
        else:
            print(f"{name}: differs; missing {[w for w in want if w not in got][:20]}, extra {[g for g in got if g not in want][:20]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
