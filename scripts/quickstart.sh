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
# 5. samples a few sentences from the trained model;
# 6. exports it as a Hugging Face folder (out/fixtures/base/), renders the
#    bundled chat fixture with its chat template into token shards with a
#    loss mask, and fine-tunes it on them (fixtures/sft.toml);
# 7. exports the fine-tuned model and evaluates it (multiple choice,
#    perplexity).
#
# Each stage says what it does and how long it took; the last lines sum up.
# On a fresh machine the first two stages take most of the time (see
# docs/benchmarks.md, "The quickstart from a fresh clone"); the job's own
# work, stages 3 to 7, takes a few minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}

stages=7
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

stage 3 "curating fixtures/corpus with fixtures/pipeline.toml into out/fixtures, then token shards and a report"
# A fresh demo each time: an existing output folder would be resumed (and
# reported complete) rather than rewritten.
rm -rf out/fixtures
"$bin" run fixtures/pipeline.toml
echo
echo "Curated output in out/fixtures:"
ls -l out/fixtures out/fixtures/rejected out/fixtures/tokens
"$bin" report out/fixtures
done_stage

stage 4 "training a small LLaMA-style model (fixtures/train.toml) on out/fixtures/tokens"
"$bin" train fixtures/train.toml --data out/fixtures/tokens --output out/fixtures/run
echo "Metrics in out/fixtures/run/metrics.jsonl, checkpoints in out/fixtures/run/checkpoints/."
"$bin" report out/fixtures/run
done_stage

stage 5 "sampling from the trained model"
"$bin" generate --checkpoint out/fixtures/run --tokenizer fixtures/tokenizer.json \
    --prompt "Call me Ishmael." --max-new-tokens 60 --seed 1
echo
done_stage

stage 6 "fine-tuning it on the chat fixture: export, render with its chat template, SFT (fixtures/sft.toml)"
rm -rf out/fixtures/base out/fixtures/chat-tokens out/fixtures/sft out/fixtures/sft-hf
"$bin" export out/fixtures/run --output out/fixtures/base --tokenizer fixtures
"$bin" tokenize --chat --input fixtures/chat/conversations.jsonl --tokenizer out/fixtures/base/tokenizer.json \
    --output out/fixtures/chat-tokens
"$bin" train fixtures/sft.toml
done_stage

stage 7 "exporting the fine-tuned model and evaluating it"
"$bin" export out/fixtures/sft --output out/fixtures/sft-hf --tokenizer out/fixtures/base
"$bin" eval out/fixtures/sft-hf --choice fixtures/eval/choice.jsonl --perplexity fixtures/eval/text.jsonl \
    --generate fixtures/eval/generate.jsonl --output out/fixtures/sft-hf/eval.json
done_stage

echo
echo "Stage times:"
for i in "${!names[@]}"; do
    printf '  [%d/%d] %8s s  %s\n' $((i + 1)) "$stages" "${times[$i]}" "${names[$i]}"
done
job=0
for t in "${times[@]:2}"; do
    job=$(awk -v a="$job" -v b="$t" 'BEGIN { printf "%.1f", a + b }')
done
awk -v a="$started" -v b="$EPOCHREALTIME" -v job="$job" \
    'BEGIN { printf "  total %.1f s; the job itself (stages 3 to 7) %.1f s\n", b - a, job }'
