#!/usr/bin/env python3
"""Tokens per second: curate tokenize against Python `tokenizers`' encode_batch,
side by side in one run, on the same text and tokenizer, both including their
reading and writing.

Python reads the JSON Lines (decompressing .zst with the zstd command), encodes
with Tokenizer.encode_batch, appends the end-of-text id and writes the tokens
as one uint16/uint32 .npy file. curate runs `curate tokenize` to Megatron
.bin/.idx shards. Each is run with one thread (RAYON_NUM_THREADS=1 and
--threads 1) and with every core.

    bench-tokenize.py --curate BIN --input FILE.jsonl[.zst] --tokenizer tokenizer.json --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

PY = r"""
import json, subprocess, sys, time
import numpy as np
from tokenizers import Tokenizer
path, tok_path, out = sys.argv[1:4]
t0 = time.perf_counter()
raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout if path.endswith(".zst") else open(path, "rb").read()
texts = [json.loads(l)["text"] for l in raw.splitlines() if l.strip()]
tok = Tokenizer.from_file(tok_path)
eos = tok.token_to_id("<|endoftext|>")
ids = []
for i in range(0, len(texts), 1000):
    for e in tok.encode_batch(texts[i:i + 1000], add_special_tokens=False):
        ids.extend(e.ids)
        ids.append(eos)
dtype = np.uint16 if tok.get_vocab_size() <= 65536 else np.uint32
np.save(out, np.array(ids, dtype=dtype))
print(len(ids), time.perf_counter() - t0)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cores = os.cpu_count()
    rows = []
    for threads in (1, cores):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        out = subprocess.run([sys.executable, "-c", PY, args.input, args.tokenizer, os.path.join(args.work, "py.npy")],
                             check=True, capture_output=True, text=True, env=env).stdout.split()
        py_tokens, py_secs = int(out[0]), float(out[1])
        dest = os.path.join(args.work, "curate")
        shutil.rmtree(dest, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run([args.curate, "tokenize", "--input", args.input, "--tokenizer", args.tokenizer, "--output", dest,
                        "--format", "megatron", "--threads", str(threads), "--progress", "none"],
                       check=True, capture_output=True)
        secs = time.perf_counter() - t0
        tokens = json.load(open(os.path.join(dest, "stats.json")))["tokens"]
        if tokens != py_tokens:
            sys.exit(f"token counts differ: curate {tokens}, Python {py_tokens}")
        rows.append((threads, tokens, py_secs, secs))
    print(f"| threads | tokens | Python encode_batch (tokens/s) | curate tokenize (tokens/s) | ratio |")
    print(f"|---|---|---|---|---|")
    for threads, tokens, py, cu in rows:
        print(f"| {threads} | {tokens} | {tokens / py:,.0f} | {tokens / cu:,.0f} | {py / cu:.2f}x |")


if __name__ == "__main__":
    main()
