"""The documents Python Polars keeps under each SQL condition, for
tests/cli/select.rs: reads the annotated Parquet shards in name order and
prints {condition: [ids in input order]}.

    python polars_select.py ANNOTATED_DIR CONDITION...
"""
import json
import sys
from pathlib import Path

import polars as pl

folder = Path(sys.argv[1])
shards = sorted(str(p) for p in folder.glob("*.parquet"))
frame = pl.concat([pl.read_parquet(s) for s in shards], how="diagonal_relaxed")
out = {}
for condition in sys.argv[2:]:
    out[condition] = frame.filter(pl.sql_expr(condition))["id"].to_list()
print(json.dumps(out))
