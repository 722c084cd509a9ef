#!/usr/bin/env python3
"""Token-level agreement of curate's English word splitter with spaCy's
tokenizer as datatrove uses it (split_into_words), on JSON Lines text.

    words_parity.py --curate BIN FILE.jsonl [--show 20]
"""
import argparse
import json
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("input")
    ap.add_argument("--show", type=int, default=15)
    args = ap.parse_args()
    from datatrove.utils.text import split_into_words

    lines = [l for l in open(args.input, encoding="utf-8") if l.strip()]
    ours = subprocess.run([args.curate, "words"], input="".join(lines), capture_output=True, text=True, check=True).stdout.splitlines()
    same_docs = tokens = same_tokens = 0
    from collections import Counter
    diffs = Counter()
    for line, mine in zip(lines, ours):
        text = json.loads(line)["text"]
        ref = split_into_words(text, "en")
        mine = json.loads(mine)
        tokens += len(ref)
        if mine == ref:
            same_docs += 1
            same_tokens += len(ref)
            continue
        import difflib
        sm = difflib.SequenceMatcher(a=ref, b=mine, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                same_tokens += i2 - i1
            else:
                diffs[(" ".join(ref[i1:i2]), " ".join(mine[j1:j2]))] += 1
    print(f"documents split identically: {same_docs}/{len(lines)}; tokens in agreement: {same_tokens}/{tokens} ({same_tokens / max(tokens, 1):.4%})")
    for (a, b), n in diffs.most_common(args.show):
        print(f"{n:6d}  spaCy {a!r:40}  curate {b!r}")


if __name__ == "__main__":
    main()
