#!/usr/bin/env python3
"""Accuracy of the `language` step (whatlang, no model file) per language on
short texts: Debian's translated package descriptions (DDTP, bookworm), a few
lines each, with the technical words, names and English fragments that
short web texts have. Not the UDHR, which whatlang's profiles come from.

    lang_short_texts.py --curate BIN --work DIR [--per-language 300] [--seed 1]

Downloads `Translation-<lang>.bz2` from deb.debian.org (a Debian package
archive) into DIR once, keeps descriptions of 2 to 8 lines and 60 to 600
characters (distinct texts, a seeded sample; languages with fewer
distinct texts give all they have), runs `curate run` with the
`language` step, and prints a table per language: texts, accuracy, and the
labels it was confused with.
"""
import argparse
import bz2
import collections
import json
import random
import subprocess
import urllib.request
from pathlib import Path

from jsonl import read_shards

# curate's code -> Debian's translation files.
FILES = {
    "de": ["de"], "fr": ["fr"], "es": ["es"], "it": ["it"], "pt": ["pt", "pt_BR"], "nl": ["nl"], "pl": ["pl"],
    "ru": ["ru"], "uk": ["uk"], "ja": ["ja"], "zh": ["zh_CN", "zh_TW"], "ko": ["ko"], "sv": ["sv"], "da": ["da"],
    "fi": ["fi"], "cs": ["cs"], "hu": ["hu"], "sk": ["sk"],
}
MIRROR = "http://deb.debian.org/debian/dists/bookworm/main/i18n"

parser = argparse.ArgumentParser()
parser.add_argument("--curate", required=True)
parser.add_argument("--work", required=True)
parser.add_argument("--per-language", type=int, default=300)
parser.add_argument("--seed", type=int, default=1, help="which sample: the rules were written looking at seed 1's errors")
args = parser.parse_args()
work = Path(args.work)
work.mkdir(parents=True, exist_ok=True)
rng = random.Random(args.seed)

docs = []
for lang, names in FILES.items():
    texts = set()
    for name in names:
        path = work / f"Translation-{name}.bz2"
        if not path.exists():
            urllib.request.urlretrieve(f"{MIRROR}/Translation-{name}.bz2", path)
        for block in bz2.open(path, "rt", encoding="utf-8").read().split("\n\n"):
            body = ["" if line == " ." else line[1:] for line in block.split("\n") if line.startswith(" ")]
            text = "\n".join(body).strip()
            if 2 <= text.count("\n") + 1 <= 8 and 60 <= len(text) <= 600:
                texts.add(text)
    texts = sorted(texts)
    rng.shuffle(texts)
    docs += [{"id": f"{lang}-{i}", "lang": lang, "text": t} for i, t in enumerate(texts[: args.per_language])]
corpus = work / "short.jsonl"
corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
out = work / "out"
subprocess.run(["rm", "-rf", str(out)], check=True)
(work / "p.toml").write_text(
    f'[input]\npath = "{corpus}"\n[[step]]\ntype = "language"\n[output]\npath = "{out}"\nformat = "jsonl"\n'
)
subprocess.run([args.curate, "run", str(work / "p.toml"), "--progress", "none"], check=True)

total, right, confused = collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)
for doc in read_shards(str(out)):
    total[doc["lang"]] += 1
    right[doc["lang"]] += doc["language"] == doc["lang"]
    if doc["language"] != doc["lang"]:
        confused[doc["lang"]][doc["language"]] += 1
print("| language | texts | accuracy | taken for |")
print("|---|---|---|---|")
for lang in sorted(total, key=lambda l: -right[l] / total[l]):
    others = ", ".join(f"{l} {n}" for l, n in confused[lang].most_common(4))
    print(f"| {lang} | {total[lang]} | {100 * right[lang] / total[lang]:.1f}% | {others} |")
print(f"all: {sum(right.values())}/{sum(total.values())}")
