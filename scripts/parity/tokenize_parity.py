#!/usr/bin/env python3
"""Checks curate's token shards against the Python reference tools.

Runs `curate tokenize` (input order, no shuffle) on INPUT with TOKENIZER,
then checks, for every document:
  - the ids equal Python `tokenizers` (Tokenizer.from_file(...).encode(text).ids
    plus the end-of-text id), and transformers' PreTrainedTokenizerFast loads
    the same file and gives the same ids;
  - the Parquet shards read by pyarrow hold those ids (and the uint16/uint32 type
    the manifest names);
  - the Megatron .bin/.idx shards read by megatron-core's IndexedDataset hold
    the same sequences in the same order.

    tokenize_parity.py --curate BIN --input DIR --tokenizer tokenizer.json --work DIR

Needs: tokenizers, transformers, pyarrow, megatron-core (and its torch), numpy,
and the zstd command for .zst inputs.
"""
import argparse
import gzip
import io
import json
import os
import subprocess
import sys


def documents(path):
    """(id, text) of every JSON Lines document under path, in curate's file order."""
    files = []
    for root, _, names in os.walk(path):
        files += [os.path.join(root, n) for n in names if not n.startswith(".")]
    for f in sorted(files):
        if f.endswith(".zst"):
            raw = subprocess.run(["zstd", "-dc", f], check=True, capture_output=True).stdout
        elif f.endswith(".gz"):
            raw = gzip.decompress(open(f, "rb").read())
        elif f.endswith((".jsonl", ".json", ".ndjson")):
            raw = open(f, "rb").read()
        else:
            continue
        offset = 0
        for line in io.BytesIO(raw):
            if line.strip():
                doc = json.loads(line)
                rel = os.path.relpath(f, path)
                yield doc.get("id") or f"{rel}#{offset}", doc["text"]
            offset += len(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    import numpy as np
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from datatrove.utils.dataset import DatatroveFileDataset

    out = os.path.join(args.work, "shards")
    subprocess.run(["rm", "-rf", out], check=True)
    subprocess.run([args.curate, "tokenize", "--input", args.input, "--tokenizer", args.tokenizer,
                    "--output", out, "--shard-tokens", "1000000", "--format", "parquet,megatron,datatrove",
                    "--progress", "none"], check=True)
    manifest = json.load(open(os.path.join(out, "manifest.json")))

    tok = Tokenizer.from_file(args.tokenizer)
    fast = PreTrainedTokenizerFast(tokenizer_file=args.tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    expected = {}
    order = []
    for doc_id, text in documents(args.input):
        ids = tok.encode(text, add_special_tokens=False).ids
        if fast(text, add_special_tokens=False)["input_ids"] != ids:
            sys.exit(f"transformers and tokenizers disagree on {doc_id}")
        expected[doc_id] = ids + [eos]
        order.append(doc_id)

    item_type = {"u16": "uint16", "u32": "uint32"}[manifest["token_width"]]
    parquet_ids, mismatched, checked_megatron, checked_ds = [], [], 0, 0
    for shard in manifest["shards"]:
        prefix = os.path.join(out, shard["name"])
        table = pq.read_table(prefix + ".parquet")
        assert str(table.schema.field("tokens").type.value_type) == item_type, table.schema
        megatron = IndexedDataset(prefix)
        assert len(megatron) == table.num_rows, (len(megatron), table.num_rows)
        rows = table.column("tokens").to_pylist()
        # datatrove's .ds: the documents back to back, ends in .ds.index;
        # datatrove's own dataset class reads the first window of the stream.
        dtype = np.uint16 if item_type == "uint16" else np.uint32
        stream = np.fromfile(prefix + ".ds", dtype=dtype)
        ends = np.fromfile(prefix + ".ds.index", dtype="<u8").astype(np.int64)
        starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]])
        assert [stream[a:b].tolist() for a, b in zip(starts, ends)] == rows, f"{shard['name']}.ds differs"
        window = DatatroveFileDataset(prefix + ".ds", seq_len=64, token_size=np.dtype(dtype).itemsize)[0]["input_ids"]
        assert window.tolist() == [t for r in rows for t in r][:65], f"{shard['name']}.ds: datatrove reads another window"
        checked_ds += len(rows)
        for i, (doc_id, tokens) in enumerate(zip(table.column("id").to_pylist(), rows)):
            parquet_ids.append(doc_id)
            if tokens != expected.get(doc_id):
                mismatched.append(doc_id)
            if not np.array_equal(megatron[i], np.array(tokens)):
                sys.exit(f"Megatron sequence {i} of {shard['name']} differs from Parquet row {i}")
            checked_megatron += 1

    print(f"documents: {len(order)}; curate wrote {len(parquet_ids)}; tokens: {sum(map(len, expected.values()))}")
    import tokenizers
    import transformers
    print(f"ids equal to Python tokenizers {tokenizers.__version__} (and transformers {transformers.__version__}): "
          f"{len(parquet_ids) - len(mismatched)}/{len(order)}")
    print(f"Megatron sequences read by megatron-core equal to Parquet rows: {checked_megatron}/{len(parquet_ids)}")
    print(f"datatrove .ds documents equal to Parquet rows (first window read by DatatroveFileDataset): {checked_ds}/{len(parquet_ids)}")
    if parquet_ids != order:
        sys.exit("curate's document order differs from the input order")
    if mismatched:
        sys.exit(f"{len(mismatched)} documents differ, first: {mismatched[:5]}")
    print("OK")


if __name__ == "__main__":
    main()
