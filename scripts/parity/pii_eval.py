#!/usr/bin/env python3
"""Precision and recall of curate's PII step, per kind, on a labelled set.

Each generated document holds one candidate in a sentence: either real-
looking PII of a known kind (valid checksums, public addresses, common
formats) or a hard negative that resembles one (version numbers, private
IPs, dates and times, ISBNs, order numbers, hex hashes, card numbers that
fail Luhn, IBANs with a wrong checksum, SSNs in never-issued ranges).
curate runs the `pii` step with tag replacement; a candidate counts as
found as KIND when it became <KIND>.

    pii_eval.py --curate BIN --work DIR [--per-kind 300] [--seed 1]
"""
import argparse
import json
import os
import random
import string
import subprocess

from jsonl import read_shards

TAGS = {"email": "EMAIL", "ip": "IP_ADDRESS", "phone": "PHONE", "credit_card": "CREDIT_CARD",
        "ssn": "SSN", "iban": "IBAN", "secret": "SECRET"}
TEMPLATES = ["Please contact {} for details.", "The record shows {} as of today.", "Reference: {}",
             "We noted {} in the log, then moved on.", "({}) was listed twice."]


def luhn_complete(prefix, length, rng):
    digits = prefix + [rng.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    for check in range(10):
        d = digits + [check]
        s = sum((x * 2 - 9 if x * 2 > 9 else x * 2) if i % 2 == 1 else x for i, x in enumerate(reversed(d)))
        if s % 10 == 0:
            return d
    raise AssertionError


def iban(country, length, rng, valid=True):
    bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - num % 97
    if not valid:
        check = (check % 97) + 1
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def positives(kind, rng):
    names = ["jane", "john.smith", "a.b-c", "maria_lopez", "k9"]
    if kind == "email":
        return f"{rng.choice(names)}{rng.randint(1, 99)}@{rng.choice(['example', 'mail', 'corp-x'])}.{rng.choice(['com', 'org', 'co.uk', 'io'])}"
    if kind == "ip":
        if rng.random() < 0.7:
            return ".".join(str(x) for x in [rng.choice([8, 23, 45, 66, 81, 104, 151, 185, 212]), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)])
        return "2001:4860:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(3)) + "::" + f"{rng.randint(1, 65535):x}"
    if kind == "phone":
        a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
        d = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
        return rng.choice([
            f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}", f"1-{a}-{b}-{c:04d}",
            f"+44 20 {b}{rng.randint(0, 9)} {c:04d}", f"+44 7{d(3)} {d(6)}", f"+49 30 {b} {c:04d}", f"+49 151 {d(4)} {d(4)}",
            f"+33 {rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}", f"+39 06 {d(4)} {d(4)}", f"+34 91{d(1)} {d(3)} {d(3)}",
            f"+61 2 {d(4)} {d(4)}", f"+81 3-{d(4)}-{d(4)}", f"+91 9{d(4)} {d(5)}", f"+31 20 {d(3)} {d(4)}",
        ])
    if kind == "credit_card":
        prefix, length = rng.choice([([4], 16), ([5, rng.randint(1, 5)], 16), ([3, 7], 15), ([6, 0, 1, 1], 16),
                                     ([2, 2, rng.randint(2, 7), 1], 16), ([3, 6], 14), ([4], 13), ([4], 19)])
        s = "".join(map(str, luhn_complete(prefix, length, rng)))
        if length == 15 and rng.random() < 0.5:
            return rng.choice(" -").join([s[:4], s[4:10], s[10:]])  # American Express's 4-6-5
        if length == 14:
            return rng.choice([s, " ".join([s[:4], s[4:10], s[10:]]), "-".join([s[:4], s[4:10], s[10:]])])  # Diners' 4-6-4
        return rng.choice([s, " ".join(s[i:i + 4] for i in range(0, len(s), 4)), "-".join(s[i:i + 4] for i in range(0, len(s), 4))])
    if kind == "ssn":
        return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "iban":
        value = iban(*rng.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("BE", 16), ("AT", 20), ("PL", 28),
                                  ("CH", 21), ("NO", 15), ("ES", 24), ("IT", 27)]), rng)
        return value.replace(" ", "") if rng.random() < 0.3 else value
    if kind == "secret":
        return rng.choice([
            "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
            "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36)),
            "Bearer " + "".join(rng.choice(string.ascii_letters + string.digits + "._-") for _ in range(32)),
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        ])
    raise ValueError(kind)


def negative(rng):
    hexs = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    bad_card = luhn_complete([4], 16, rng)
    bad_card[-1] = (bad_card[-1] + 1) % 10
    return rng.choice([
        f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
        f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}", f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1",
        f"127.0.0.{rng.randint(1, 9)}", f"{rng.randint(2000, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}",
        f"order #{rng.randint(10**9, 10**10 - 1)}", f"invoice {rng.randint(10**11, 10**12 - 1)}", hexs,
        "".join(map(str, bad_card)), f"9{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        f"000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}", iban("DE", 22, rng, valid=False),
        f"{rng.randint(1, 999)},{rng.randint(100, 999)}.{rng.randint(10, 99)} USD", f"zip {rng.randint(10000, 99999)}",
        f"page {rng.randint(1, 300)} of {rng.randint(300, 999)}", f"{rng.randint(1, 99)}.{rng.randint(1, 99)}%",
    ])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)
    docs = []
    for kind in TAGS:
        for _ in range(args.per_kind):
            docs.append((kind, positives(kind, rng)))
    for _ in range(args.per_kind * 4):
        docs.append((None, negative(rng)))
    path = os.path.join(args.work, "pii.jsonl")
    with open(path, "w") as f:
        for i, (kind, value) in enumerate(docs):
            f.write(json.dumps({"id": f"p{i}", "text": rng.choice(TEMPLATES).format(value)}) + "\n")
    out = os.path.join(args.work, "out")
    subprocess.run(["rm", "-rf", out], check=True)
    pipeline = os.path.join(args.work, "pii.toml")
    with open(pipeline, "w") as f:
        f.write(f'[input]\npath = "{path}"\n[[step]]\ntype = "pii"\n[output]\npath = "{out}"\nformat = "jsonl"\n')
    subprocess.run([args.curate, "run", pipeline, "--progress", "none"], check=True, capture_output=True)
    texts = {d["id"]: d["text"] for d in read_shards(out)}
    print(f"{len(docs)} documents: {args.per_kind} of each kind, {args.per_kind * 4} hard negatives\n")
    print("| kind | true positives | false positives | false negatives | precision | recall |")
    print("|---|---|---|---|---|---|")
    for kind, tag in TAGS.items():
        tp = fp = fn = 0
        for i, (label, _) in enumerate(docs):
            found = f"<{tag}>" in texts[f"p{i}"]
            tp += found and label == kind
            fp += found and label != kind
            fn += (not found) and label == kind
        print(f"| {kind} | {tp} | {fp} | {fn} | {tp / max(tp + fp, 1):.3f} | {tp / max(tp + fn, 1):.3f} |")


if __name__ == "__main__":
    main()
