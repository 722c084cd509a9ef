#!/usr/bin/env bash
# The main job on the bundled fixtures: builds curate (release) and runs
# fixtures/pipeline.toml, which curates three small corpora (JSON Lines .zst
# and .gz, Parquet) into out/fixtures/ and tokenizes what it keeps into
# out/fixtures/tokens/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
cargo build --release --locked --bin curate
bin=$CARGO_TARGET_DIR/release/curate
# A fresh demo each time: an existing output folder would be resumed (and
# reported complete) rather than rewritten.
rm -rf out/fixtures
"$bin" run fixtures/pipeline.toml
echo
echo "Output in out/fixtures:"
ls -l out/fixtures out/fixtures/rejected out/fixtures/tokens
