"""Reading and writing JSON Lines (plain or .zst) and reading curate's JSON Lines shards, for the parity scripts."""
import json
import os
import subprocess


def read_jsonl(path):
    """Every document of a .jsonl or .jsonl.zst file."""
    if path.endswith(".zst"):
        raw = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    else:
        with open(path, "rb") as f:
            raw = f.read()
    return [json.loads(l) for l in raw.splitlines() if l.strip()]


def read_shards(folder):
    """Every document of the .jsonl.zst shards directly in a curate output folder, in shard order."""
    if not os.path.isdir(folder):
        return []
    return [d for f in sorted(os.listdir(folder)) if f.endswith(".jsonl.zst") for d in read_jsonl(os.path.join(folder, f))]


def write_jsonl(docs, path):
    """Writes documents as JSON Lines (UTF-8, not ASCII-escaped); returns the size in MB."""
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return os.path.getsize(path) / 1e6
