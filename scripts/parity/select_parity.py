#!/usr/bin/env python3
"""`curate select` against Python Polars and DuckDB on the same conditions.

Annotates the shared corpora (UDHR, State of the Union, Moby-Dick) with
curate into a multi-shard Parquet output (language ID; Gopher quality,
FineWeb quality and length annotated), then for each condition runs
`curate select` and keeps, in Python, the documents Polars'
`filter(pl.sql_expr(...))` and DuckDB's `WHERE` keep, and compares the ids
in order. Prints one line per condition and exits non-zero on a mismatch.

    select_parity.py CURATE_BIN WORKDIR [--corpora ../shared/corpora]

Needs polars and duckdb (scripts/bench-query.sh's venv has both).
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import duckdb
import polars as pl

CONDITIONS = [
    '"quality.words" >= 80 AND language = \'en\'',
    "quality = 'keep'",
    "quality <> 'keep' AND \"fineweb.line_punct_ratio\" < 0.5",
    "language IN ('de', 'fr', 'es', 'pt') OR \"quality.mean_word_length\" > 6",
    '"length.chars" BETWEEN 2000 AND 50000 AND NOT (fineweb = \'keep\')',
    '"quality.stop_words" >= 4 AND "quality.alpha_words_ratio" > 0.9 OR language_score < 0.5',
    "lang IS NULL AND \"fineweb.char_dup_ratio\" <= 0.01",
    "title LIKE 'The %' OR \"quality.hash_ratio\" > 0",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("curate")
    ap.add_argument("work")
    ap.add_argument("--corpora", default=os.path.join(os.path.dirname(__file__), "../../../shared/corpora"))
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    annotated = os.path.join(work, "annotated")
    if not os.path.exists(os.path.join(annotated, "stats.json")):
        pipeline = os.path.join(work, "annotate.toml")
        with open(pipeline, "w") as f:
            f.write(
                f'[input]\npath = "{os.path.abspath(args.corpora)}/*.jsonl.zst"\nbatch_size = 64\n'
                '[[step]]\ntype = "language"\n'
                '[[step]]\ntype = "gopher_quality"\nname = "quality"\nmode = "annotate"\n'
                '[[step]]\ntype = "fineweb_quality"\nname = "fineweb"\nmode = "annotate"\n'
                '[[step]]\ntype = "length"\nmode = "annotate"\nmin_chars = 1000\n'
                f'[output]\npath = "{annotated}"\nshard_bytes = "4MiB"\n'
            )
        subprocess.run([args.curate, "run", pipeline, "--progress", "none"], check=True)
    shards = sorted(glob.glob(os.path.join(annotated, "*.parquet")))
    frame = pl.concat([pl.read_parquet(s) for s in shards], how="diagonal_relaxed")
    files = ", ".join(f"'{s}'" for s in shards)
    print(f"{len(shards)} shards, {frame.height} documents")
    failed = 0
    for i, condition in enumerate(CONDITIONS):
        out = os.path.join(work, f"selected-{i}")
        subprocess.run(["rm", "-rf", out], check=True)
        subprocess.run([args.curate, "select", annotated, "--where", condition, "--output", out, "--progress", "none"],
                       check=True, capture_output=True)
        ours = []
        for s in sorted(glob.glob(os.path.join(out, "*.parquet"))):
            ours.extend(pl.read_parquet(s, columns=["id"])["id"].to_list())
        stats = json.load(open(os.path.join(out, "stats.json")))
        assert stats["input_docs"] == stats["kept_docs"] + stats["dropped_docs"] + stats["error_docs"]
        polars_ids = frame.filter(pl.sql_expr(condition))["id"].to_list()
        # DuckDB in the shards' order: file, then row.
        duck = duckdb.sql(
            f"SELECT id FROM read_parquet([{files}], filename = true, file_row_number = true) WHERE {condition} "
            "ORDER BY filename, file_row_number"
        ).fetchall()
        duck_ids = [r[0] for r in duck]
        same = ours == polars_ids == duck_ids
        failed += not same
        print(f"{'same' if same else 'DIFFERENT'}: kept {len(ours)} (Polars {len(polars_ids)}, DuckDB {len(duck_ids)}) "
              f"of {stats['input_docs']}, {stats['error_docs']} errors: {condition}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
