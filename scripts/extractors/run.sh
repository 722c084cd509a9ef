#!/usr/bin/env bash
# Candidate HTML extractors on the article-extraction benchmark pages, scored
# with the benchmark's own evaluate.py, against trafilatura 2.0 (Python):
#
#   scripts/extractors/run.sh ../shared/corpora/html PYTHON
#
# PYTHON has trafilatura 2.0 (and lxml_html_clean). Prints F1, precision,
# recall, and pages/s and MB/s on one core for each.
set -euo pipefail
pages=$(realpath "$1")
python=${2:-python3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --target-dir "${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}/extractors"
bin=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}/extractors/release/curate-extractor-eval
mkdir -p "$work/eval/output"
cp "$pages/ground-truth.json" "$work/eval/"
for which in traf ds; do
    taskset -c 0 "$bin" "$pages" "$work/$which" "$which"
done
"$python" - "$pages" "$work" <<'PY'
import glob, gzip, json, os, sys, time
import trafilatura
pages_dir, work = sys.argv[1], sys.argv[2]
truth = json.load(open(f"{pages_dir}/ground-truth.json"))
for name, d in [("rs_trafilatura", "traf"), ("dom_smoothie", "ds")]:
    out = {os.path.basename(f)[:-5]: json.load(open(f)) for f in glob.glob(f"{work}/{d}/*.json")}
    json.dump(out, open(f"{work}/eval/output/{name}.json", "w"))
pages = {k: gzip.decompress(open(f"{pages_dir}/{k}.html.gz", "rb").read()).decode("utf-8") for k in truth}
os.sched_setaffinity(0, {0})
t = time.perf_counter()
out = {k: {"articleBody": trafilatura.extract(h, favor_precision=True) or ""} for k, h in pages.items()}
s = time.perf_counter() - t
mb = sum(len(h.encode()) for h in pages.values()) / 1e6
print(f"trafilatura {trafilatura.__version__} (favor_precision): {len(pages)} pages, {len(pages) / s:.1f} pages/s, {mb / s:.1f} MB/s", file=sys.stderr)
json.dump(out, open(f"{work}/eval/output/trafilatura_precision.json", "w"))
PY
cd "$work/eval" && "$python" "$pages/evaluate.py" --n-bootstrap 100
