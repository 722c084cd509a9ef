#!/usr/bin/env bash
# The main job on the bundled fixtures, from raw text to a trained model:
#
# 1. installs PyTorch 2.11.0 (libtorch, for tch) into a cached venv;
# 2. builds curate and the trainer (release);
# 3. runs fixtures/pipeline.toml, which curates three small corpora (JSON
#    Lines .zst and .gz, Parquet) into out/fixtures/ and tokenizes what it
#    keeps into out/fixtures/tokens/;
# 4. trains a small LLaMA-style model on those token shards
#    (fixtures/train.toml) into out/fixtures/run/;
# 5. samples a few sentences from the trained model.
#
# Each stage says what it does and how long it took; the last lines sum up.
# On a fresh machine the first two stages take most of the time (see
# docs/benchmarks.md, "The quickstart from a fresh clone"); the job's own
# work, stages 3 to 5, takes well under two minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}

stages=5
names=()
times=()
started=$EPOCHREALTIME
stage_start=

# stage N "what it does": announces a stage and starts its clock.
stage() {
    stage_start=$EPOCHREALTIME
    names+=("$2")
    echo
    echo "==> [$1/$stages] $2"
}

# done_stage: prints the time the current stage took.
done_stage() {
    local took
    took=$(awk -v a="$stage_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    times+=("$took")
    echo "==> done in ${took} s"
}

stage 1 "PyTorch 2.11.0 for libtorch (a cached venv; the first time installs about 4.6 GB)"
venv=$(scripts/libtorch.sh)
export LIBTORCH_USE_PYTORCH=1 PATH=$venv/bin:$PATH
echo "    $venv"
done_stage

stage 2 "building curate and the trainer (release; the first build takes minutes, later ones seconds)"
cargo build --release --locked -p curate -p curate-trainer --bins
bin=$CARGO_TARGET_DIR/release/curate
done_stage

stage 3 "curating fixtures/corpus with fixtures/pipeline.toml into out/fixtures, then token shards"
# A fresh demo each time: an existing output folder would be resumed (and
# reported complete) rather than rewritten.
rm -rf out/fixtures
"$bin" run fixtures/pipeline.toml
echo
echo "Curated output in out/fixtures:"
ls -l out/fixtures out/fixtures/rejected out/fixtures/tokens
done_stage

stage 4 "training a small LLaMA-style model (fixtures/train.toml) on out/fixtures/tokens"
"$bin" train fixtures/train.toml --data out/fixtures/tokens --output out/fixtures/run
echo "Metrics in out/fixtures/run/metrics.jsonl, checkpoints in out/fixtures/run/checkpoints/."
done_stage

stage 5 "sampling from the trained model"
"$bin" generate --checkpoint out/fixtures/run --tokenizer fixtures/tokenizer.json \
    --prompt "Call me Ishmael." --max-new-tokens 60 --seed 1
echo
done_stage

echo
echo "Stage times:"
for i in "${!names[@]}"; do
    printf '  [%d/%d] %8s s  %s\n' $((i + 1)) "$stages" "${times[$i]}" "${names[$i]}"
done
awk -v a="$started" -v b="$EPOCHREALTIME" -v t3="${times[2]}" -v t4="${times[3]}" -v t5="${times[4]}" \
    'BEGIN { printf "  total %.1f s; the job itself (stages 3 to 5) %.1f s\n", b - a, t3 + t4 + t5 }'
