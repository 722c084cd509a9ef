#!/usr/bin/env bash
# The main job on the bundled fixtures, from raw text to a trained model:
#
# 1. builds curate and runs fixtures/pipeline.toml, which curates three small
#    corpora (JSON Lines .zst and .gz, Parquet) into out/fixtures/ and
#    tokenizes what it keeps into out/fixtures/tokens/;
# 2. installs PyTorch 2.11.0 (libtorch, for tch) into a cached venv, builds
#    the trainer, and trains a small LLaMA-style model on those token shards
#    (fixtures/train.toml) into out/fixtures/run/;
# 3. samples a few sentences from the trained model.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
venv=$(scripts/libtorch.sh)
export LIBTORCH_USE_PYTORCH=1 PATH=$venv/bin:$PATH
cargo build --release --locked -p curate -p curate-trainer --bins
bin=$CARGO_TARGET_DIR/release/curate
# A fresh demo each time: an existing output folder would be resumed (and
# reported complete) rather than rewritten.
rm -rf out/fixtures
"$bin" run fixtures/pipeline.toml
echo
echo "Curated output in out/fixtures:"
ls -l out/fixtures out/fixtures/rejected out/fixtures/tokens
echo
"$bin" train fixtures/train.toml --data out/fixtures/tokens --output out/fixtures/run
echo
echo "Metrics in out/fixtures/run/metrics.jsonl, checkpoints in out/fixtures/run/checkpoints/. A sample:"
"$bin" generate --checkpoint out/fixtures/run --tokenizer fixtures/tokenizer.json \
    --prompt "Call me Ishmael." --max-new-tokens 60 --seed 1
