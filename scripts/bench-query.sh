#!/usr/bin/env bash
# Benchmarks of the query commands on generated, annotated data, side by side:
#
# 1. `curate select` against the same condition in Python Polars (scan,
#    filter, sink to Parquet) and DuckDB (COPY ... TO Parquet), each reading
#    the annotated Parquet shards and writing the kept documents; MB/s of
#    input Parquet and the ratios, and the kept counts (which must agree);
# 2. `curate report` on the annotated output at each size: seconds and peak
#    memory (/usr/bin/time), which must not grow with the output.
#
#   scripts/bench-query.sh WORKDIR [BYTES...]    # default sizes: 1e9 1e10 bytes of JSON Lines text
#
# THREADS=N gives each of the three N threads (curate --threads, POLARS_MAX_THREADS,
# DuckDB's SET threads); by default each uses every core.
#
# Needs a release build (cargo build --release -p curate) and installs
# Polars and DuckDB into a scratch venv (~/.cache/curate/bench-query-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: scripts/bench-query.sh WORKDIR [BYTES...]}
shift
sizes=("${@:-1000000000 10000000000}")
read -r -a sizes <<<"${sizes[*]}"
bin=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}/release/curate
venv=${CURATE_TORCH_CACHE:-$HOME/.cache/curate}/bench-query-venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet polars==2.1.0 duckdb==2.0.1
fi
py=$venv/bin/python
condition='"quality.words" >= 80 AND language = '"'en'"' AND "quality.stop_words" >= 4'
mkdir -p "$work"
for bytes in "${sizes[@]}"; do
    dir=$work/$bytes
    if [[ ! -f $dir/annotated/stats.json ]]; then
        mkdir -p "$dir"
        [[ -f $dir/corpus.jsonl ]] || python3 scripts/gen_corpus.py "$dir/corpus.jsonl" --bytes "$bytes" --seed 1
        cat >"$dir/annotate.toml" <<EOF
[input]
path = "$dir/corpus.jsonl"
[[step]]
type = "language"
[[step]]
type = "gopher_quality"
name = "quality"
mode = "annotate"
[[step]]
type = "fineweb_quality"
name = "fineweb"
mode = "annotate"
[output]
path = "$dir/annotated"
EOF
        "$bin" run "$dir/annotate.toml" --progress none
        rm -f "$dir/corpus.jsonl"
    fi
    input_mb=$(du -sm --apparent-size "$dir/annotated" | cut -f1)
    echo "== $bytes bytes of text; annotated Parquet: $input_mb MB"
    rm -rf "$dir/sel-curate" "$dir/sel-polars.parquet" "$dir/sel-duckdb.parquet"
    t0=$EPOCHREALTIME
    "$bin" select "$dir/annotated" --where "$condition" --output "$dir/sel-curate" --progress none \
        ${THREADS:+--threads $THREADS} 2>/dev/null
    t1=$EPOCHREALTIME
    kept_curate=$(python3 -c "import json; print(json.load(open('$dir/sel-curate/stats.json'))['kept_docs'])")
    ${THREADS:+env POLARS_MAX_THREADS=$THREADS} "$py" - "$dir" "$condition" "$t0" "$t1" "$input_mb" "$kept_curate" <<'EOF'
import sys, time, glob
import os
import polars as pl, duckdb
if os.environ.get("POLARS_MAX_THREADS"):
    duckdb.sql(f"SET threads = {os.environ['POLARS_MAX_THREADS']}")
d, cond, t0, t1, mb, kept_curate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
shards = sorted(glob.glob(f"{d}/annotated/*.parquet"))
t = time.time()
pl.scan_parquet(shards).filter(pl.sql_expr(cond)).sink_parquet(f"{d}/sel-polars.parquet", compression="zstd")
polars_s = time.time() - t
kept_polars = pl.scan_parquet(f"{d}/sel-polars.parquet").select(pl.len()).collect().item()
t = time.time()
files = ", ".join(f"'{s}'" for s in shards)
duckdb.sql(f"COPY (SELECT * FROM read_parquet([{files}]) WHERE {cond}) TO '{d}/sel-duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)")
duckdb_s = time.time() - t
kept_duckdb = duckdb.sql(f"SELECT count(*) FROM read_parquet('{d}/sel-duckdb.parquet')").fetchall()[0][0]
curate_s = t1 - t0
print(f"select: curate {curate_s:.2f} s ({mb / curate_s:.0f} MB/s), Python Polars {polars_s:.2f} s ({mb / polars_s:.0f} MB/s), "
      f"DuckDB {duckdb_s:.2f} s ({mb / duckdb_s:.0f} MB/s); curate/Polars {polars_s / curate_s:.2f}x, curate/DuckDB {duckdb_s / curate_s:.2f}x")
print(f"kept: curate {kept_curate}, Polars {kept_polars}, DuckDB {kept_duckdb}")
assert kept_curate == kept_polars == kept_duckdb, "the three keep the same documents"
EOF
    ${THREADS:+env POLARS_MAX_THREADS=$THREADS} /usr/bin/time -f "report: %e s, peak memory %M KiB" "$bin" report "$dir/annotated" 2>&1 | tail -1
done
