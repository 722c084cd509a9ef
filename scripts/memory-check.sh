#!/usr/bin/env bash
# Bounded memory, shown by measurement: peak RSS of `curate run` on a
# generated input of at least 1 GB and on one ten times smaller, for a
# zstd-compressed file (one sequential unit) and a plain file (byte-range
# units in parallel). The two peaks of each pair should be close.
#
#   scripts/memory-check.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/curate-memory}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/curate

for size in 1100000000 110000000; do
  [ -f "$work/gen-$size.jsonl" ] || python3 scripts/gen_corpus.py "$work/gen-$size.jsonl" --bytes "$size"
  [ -f "$work/gen-$size.jsonl.zst" ] || zstd -q -T0 -f "$work/gen-$size.jsonl" -o "$work/gen-$size.jsonl.zst"
done

cat > "$work/pipeline.toml" <<TOML
[input]
path = "unset"
# Small enough that the smaller plain file has several units too: both runs
# then keep every worker busy, and the peaks compare like with like.
split_bytes = "32MiB"
[[step]]
type = "length"
min_chars = 200
[output]
path = "unset"
format = "parquet"
rejected = true
TOML

printf '| input | size (MB) | documents | peak RSS (MB) | seconds |\n|---|---|---|---|---|\n'
for ext in jsonl.zst jsonl; do
  for size in 1100000000 110000000; do
    in="$work/gen-$size.$ext"
    out="$work/out-$size-$ext"
    rm -rf "$out"
    /usr/bin/time -f '%M %e' -o "$work/time.txt" "$bin" run "$work/pipeline.toml" --input "$in" --output "$out" --progress none 2>/dev/null
    read -r rss secs < "$work/time.txt"
    docs=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['input_docs'])" "$out/stats.json")
    printf '| %s | %d | %d | %d | %s |\n' "gen-$size.$ext" "$(( $(stat -c %s "$in") / 1000000 ))" "$docs" "$(( rss / 1024 ))" "$secs"
  done
done
