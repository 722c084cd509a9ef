#!/usr/bin/env bash
# Read-to-write throughput with no steps, beside `zstd -d` of the same file
# as the physical reference, measured side by side in one run. MB/s are
# uncompressed JSON Lines megabytes per wall-clock second, for every row.
#
#   scripts/bench-io.sh [WORKDIR] [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}/curate-bench-io}
size=${2:-1100000000}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/curate

src="$work/gen-$size.jsonl"
[ -f "$src" ] || python3 scripts/gen_corpus.py "$src" --bytes "$size"
[ -f "$src.zst" ] || zstd -q -T0 -f "$src" -o "$src.zst"
raw=$(stat -c %s "$src")

pipe() {
  cat > "$work/$1.toml" <<TOML
[input]
path = "unset"
[output]
path = "unset"
format = "$2"
TOML
}
pipe to-jsonl jsonl
pipe to-parquet parquet

timed() { # label, command...
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'| {sys.argv[3]} | {s:.2f} | {int(sys.argv[4])/s/1e6:.0f} |')" "$t0" "$t1" "$label" "$raw"
}

echo "input: $src ($((raw / 1000000)) MB uncompressed, $(( $(stat -c %s "$src.zst") / 1000000 )) MB .zst), $(nproc) cores"
echo
echo '| what | seconds | MB/s |'
echo '|---|---|---|'
timed 'zstd -d (reference, 1 thread)' zstd -dc "$src.zst"
timed 'zstd -d piped into zstd -3 -T0 (reference: decompress and recompress)' sh -c "zstd -dc '$src.zst' | zstd -q -3 -T0 -c"
rm -rf "$work/o1"; timed 'curate: .jsonl.zst → .jsonl.zst' "$bin" run "$work/to-jsonl.toml" --input "$src.zst" --output "$work/o1" --progress none
rm -rf "$work/o2"; timed 'curate: .jsonl.zst → Parquet' "$bin" run "$work/to-parquet.toml" --input "$src.zst" --output "$work/o2" --progress none
rm -rf "$work/o3"; timed 'curate: Parquet → Parquet' "$bin" run "$work/to-parquet.toml" --input "$work/o2" --output "$work/o3" --progress none
rm -rf "$work/o4"; timed 'curate: plain .jsonl → .jsonl.zst' "$bin" run "$work/to-jsonl.toml" --input "$src" --output "$work/o4" --progress none
