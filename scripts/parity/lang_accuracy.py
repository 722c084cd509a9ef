#!/usr/bin/env python3
"""Accuracy of curate's `language` step (whatlang) per language, on the UDHR
in ~500 languages: each translation whole, and its paragraphs one by one
(short texts, as web pages often are). Only languages whatlang claims are
scored; the rest show how often an unsupported language is taken for a
supported one.

    lang_accuracy.py --curate BIN --work DIR UDHR.jsonl.zst
"""
import argparse
import collections
import json
import os
import subprocess

from jsonl import read_jsonl, read_shards

# whatlang's languages: ISO 639-1 (what curate writes) -> 639-3.
ISO1 = {"eo": "epo", "en": "eng", "ru": "rus", "zh": "cmn", "es": "spa", "pt": "por", "it": "ita", "bn": "ben", "fr": "fra",
        "de": "deu", "uk": "ukr", "ka": "kat", "ar": "ara", "hi": "hin", "ja": "jpn", "he": "heb", "yi": "yid", "pl": "pol",
        "am": "amh", "jv": "jav", "ko": "kor", "nb": "nob", "da": "dan", "sv": "swe", "fi": "fin", "tr": "tur", "nl": "nld",
        "hu": "hun", "cs": "ces", "el": "ell", "bg": "bul", "be": "bel", "mr": "mar", "kn": "kan", "ro": "ron", "sl": "slv",
        "hr": "hrv", "sr": "srp", "mk": "mkd", "lt": "lit", "lv": "lav", "et": "est", "ta": "tam", "vi": "vie", "ur": "urd",
        "th": "tha", "gu": "guj", "uz": "uzb", "pa": "pan", "az": "aze", "id": "ind", "te": "tel", "fa": "pes", "ml": "mal",
        "or": "ori", "my": "mya", "ne": "nep", "si": "sin", "km": "khm", "tk": "tuk", "ak": "aka", "zu": "zul", "sn": "sna",
        "af": "afr", "la": "lat", "sk": "slk", "ca": "cat", "tl": "tgl", "hy": "hye"}
SUPPORTED = set(ISO1.values())
# UDHR codes for the same languages under another (individual or macro) code.
ALIASES = {"arb": "ara", "azj": "aze", "uzn": "uzb", "lvs": "lav", "ekk": "est", "npi": "nep", "fas": "pes", "prs": "pes",
           "khk": "mon", "zsm": "msa", "nor": "nob", "ell_monotonic": "ell", "jav_java": "jav"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("udhr")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    docs = []
    for d in read_jsonl(args.udhr):
        label = ALIASES.get(d["lang"], d["lang"])
        docs.append({"id": f"{d['id']}/whole", "text": d["text"], "label": label, "kind": "whole"})
        for i, para in enumerate(p for p in d["text"].split("\n") if len(p.strip()) >= 40):
            docs.append({"id": f"{d['id']}/{i}", "text": para, "label": label, "kind": "paragraph"})
    path = os.path.join(args.work, "udhr.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    out = os.path.join(args.work, "out")
    subprocess.run(["rm", "-rf", out], check=True)
    pipeline = os.path.join(args.work, "lang.toml")
    with open(pipeline, "w") as f:
        f.write(f'[input]\npath = "{path}"\n[[step]]\ntype = "language"\n[output]\npath = "{out}"\nformat = "jsonl"\nrejected = true\n')
    subprocess.run([args.curate, "run", pipeline, "--progress", "none"], check=True, capture_output=True)
    got = {}
    for d in read_shards(out) + read_shards(os.path.join(out, "rejected")):
        lang = d.get("language")
        got[d["id"]] = ISO1.get(lang, lang) if lang else None
    per = collections.defaultdict(lambda: {"whole": [0, 0], "paragraph": [0, 0]})
    confusions = collections.Counter()
    unsupported_claimed = [0, 0]
    for d in docs:
        pred = got.get(d["id"])
        if d["label"] in SUPPORTED:
            cell = per[d["label"]][d["kind"]]
            cell[0] += pred == d["label"]
            cell[1] += 1
            if pred != d["label"]:
                confusions[(d["label"], pred)] += 1
        elif d["kind"] == "paragraph":
            unsupported_claimed[0] += pred is not None
            unsupported_claimed[1] += 1
    print("| language | whole texts | paragraphs |")
    print("|---|---|---|")
    tw = tp = nw = np_ = 0
    for lang in sorted(per):
        (cw, w), (cp, p) = per[lang]["whole"], per[lang]["paragraph"]
        tw, nw, tp, np_ = tw + cw, nw + w, tp + cp, np_ + p
        print(f"| {lang} | {cw}/{w} | {cp}/{p} ({cp / max(p, 1):.1%}) |")
    print(f"| all {len(per)} | {tw}/{nw} ({tw / max(nw, 1):.2%}) | {tp}/{np_} ({tp / max(np_, 1):.2%}) |")
    print(f"\nparagraphs of unsupported languages given a supported language: {unsupported_claimed[0]}/{unsupported_claimed[1]}")
    print("most common confusions (label -> detected):", confusions.most_common(12))


if __name__ == "__main__":
    main()
