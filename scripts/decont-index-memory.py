"""Memory of a decontamination index of about a million n-grams, loaded by the `decontaminate` step.

    python scripts/decont-index-memory.py [--curate target/release/curate] [--items 1000]

Writes benchmark items with 1,011-word answers of random words (so every
12-gram is distinct: 1,000 + 11 spanning n-grams per item), indexes them with
`curate decont index`, and runs a one-document pipeline with and without the
step under /usr/bin/time, printing both peak RSS values and their difference.
"""

import argparse
import json
import random
import re
import subprocess
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--curate", default=str(Path.home() / ".cache/curate/target/release/curate"))
parser.add_argument("--items", type=int, default=1000)
args = parser.parse_args()
rng = random.Random(0)
vocabulary = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(50000)]
work = Path(tempfile.mkdtemp())
with open(work / "bench.jsonl", "w") as f:
    for i in range(args.items):
        answer = " ".join(rng.choice(vocabulary) for _ in range(1011))
        f.write(json.dumps({"task": "synthetic", "query": "what is item %d" % i, "text": answer}) + "\n")
subprocess.run([args.curate, "decont", "index", "--input", str(work / "bench.jsonl"), "--output", str(work / "index")], check=True)
ngrams = json.loads((work / "index/index.json").read_text())["tasks"]["synthetic"]["ngrams"]
(work / "in.jsonl").write_text(json.dumps({"id": "a", "text": "a short clean document"}) + "\n")


def peak_kib(step):
    (work / "p.toml").write_text(f'[input]\npath = "{work / "in.jsonl"}"\n{step}[output]\npath = "{work / "out"}"\n')
    subprocess.run(["rm", "-rf", str(work / "out")], check=True)
    err = subprocess.run(["/usr/bin/time", "-v", args.curate, "run", str(work / "p.toml"), "--progress", "none", "--threads", "1"], capture_output=True, text=True).stderr
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))


with_index = peak_kib(f'[[step]]\ntype = "decontaminate"\nindex = "{work / "index"}"\n')
without = peak_kib('[[step]]\ntype = "length"\nmin_chars = 1\n')
print(f"{ngrams:,} n-grams ({(work / 'index/synthetic.index.hashes').stat().st_size / 2**20:.1f} MiB on disk): peak RSS {with_index / 1024:.1f} MiB with the index, {without / 1024:.1f} MiB without, {(with_index - without) / 1024:.1f} MiB for the index ({(with_index - without) * 1024 / ngrams:.1f} bytes per n-gram)")
