#!/usr/bin/env bash
# GPU check: first one step's loss and gradients on the GPU against Hugging
# Face transformers (scripts/parity/trainer_grads.py, when python3 has
# transformers), then bf16 training of a 124M GPT-2 and a ~350M LLaMA and fp16
# (dynamic loss scaling) training of the GPT-2, printing tokens/s and MFU for
# each. Meant for a GPU machine that has PyTorch 2.11.0 but no Rust: build
# curate-train elsewhere and bring it.
#
#   scripts/gpu-check.sh [CURATE_TRAIN]         # default target/release/curate-train
#   scripts/gpu-check.sh --smoke [CURATE_TRAIN] # tiny models on the CPU: checks the plumbing
#   scripts/gpu-check.sh --resume-only [CURATE_TRAIN]  # only the kill-and-resume check
#
# Environment: TORCH_LIB (torch's lib folder; found through python3 when
# unset), PEAK_TFLOPS (the GPU's dense bf16 peak; guessed from nvidia-smi for
# H100/H200/A100 when unset). Each model trains WARMUP + STEPS steps (10 +
# 30 by default) on the bundled token shards; the first WARMUP are not
# counted. The whole check takes a few minutes; each run is capped at 200 s.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0 resume_only=0
if [[ ${1:-} == --smoke ]]; then smoke=1; shift; fi
if [[ ${1:-} == --resume-only ]]; then resume_only=1; shift; fi
bin=$(realpath "${1:-target/release/curate-train}")
warmup=${WARMUP:-10}
steps=${STEPS:-30}

if [[ -z ${TORCH_LIB:-} ]]; then
    TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
fi
# libtorch_cuda needs the CUDA libraries that the torch wheel installs beside it.
nvidia_libs=$(find "$TORCH_LIB/../../nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':' || true)
export LD_LIBRARY_PATH="$TORCH_LIB:$nvidia_libs${LD_LIBRARY_PATH:-}"

device=cuda
if ((smoke)); then device=cpu; fi
if ((!smoke && !resume_only)) && python3 -c 'import transformers, safetensors' 2>/dev/null; then
    python3 scripts/parity/trainer_grads.py --curate-train "$bin" --device cuda
fi
if [[ -z ${PEAK_TFLOPS:-} && $device == cuda ]]; then
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    case $gpu in
        *H100*|*H200*|*GH200*) PEAK_TFLOPS=989 ;;
        *A100*) PEAK_TFLOPS=312 ;;
        *) PEAK_TFLOPS= ;;
    esac
    echo "GPU: $gpu (dense bf16 peak ${PEAK_TFLOPS:-unknown} TFLOP/s)"
fi
peak_line=${PEAK_TFLOPS:+peak_tflops = $PEAK_TFLOPS}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {
    local name=$1 model=$2 seq_len=$3 batch=$4 precision=${5:-bf16}
    if ((smoke)); then
        model=$(printf '%s\n' "$model" | sed -E 's/^(hidden_size) = .*/\1 = 64/; s/^(num_layers) = .*/\1 = 2/; s/^(intermediate_size) = .*/\1 = 128/; s/^(num_heads) = .*/\1 = 4/; s/^(num_kv_heads) = .*/\1 = 2/')
        seq_len=64 batch=2
    fi
    cat > "$work/$name.toml" <<TOML
[model]
$model
max_position_embeddings = $seq_len
[data]
path = "fixtures/tokens"
seq_len = $seq_len
[training]
device = "$device"
max_steps = $((warmup + steps))
batch_size = $batch
learning_rate = 3e-4
warmup_steps = $warmup
$precision = true
output_dir = "$work/$name"
$peak_line
TOML
    timeout 200 "$bin" train "$work/$name.toml" 2>"$work/$name.log" || { cat "$work/$name.log"; return 1; }
    python3 - "$work/$name/metrics.jsonl" "$warmup" "$name ($precision)" "$seq_len" "$batch" <<'PY'
import json, statistics, sys
path, warmup, name, seq, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
steps = [m for m in map(json.loads, open(path)) if "loss" in m][warmup:]
tps = statistics.median(m["tokens_per_s"] for m in steps)
mfu = [m["mfu"] for m in steps if m["mfu"] is not None]
mfu_text = f"{100 * statistics.median(mfu):.1f}%" if mfu else "n/a (set PEAK_TFLOPS)"
print(f"| {name} | {seq} x {batch} | {tps:,.0f} | {mfu_text} | {steps[-1]['loss']:.3f} |")
PY
}


# Kill and resume on the device: a run aborted after step 25 (the test hook
# of curate-train, as a kill would) and resumed from its step-20 checkpoint,
# against the same run uninterrupted: per-step losses and final weights.
resume_check() {
    local cfg="$work/resume.toml"
    cat > "$cfg" <<TOML
[model]
architecture = "llama"
hidden_size = 256
num_layers = 4
num_heads = 8
num_kv_heads = 4
intermediate_size = 704
max_position_embeddings = 256
[data]
path = "fixtures/tokens"
seq_len = 256
[training]
device = "$device"
max_steps = 40
batch_size = 8
checkpoint_interval = 10
warmup_steps = 5
bf16 = true
output_dir = "OUT"
TOML
    sed "s|OUT|$work/whole|" "$cfg" > "$work/whole.toml"
    sed "s|OUT|$work/killed|" "$cfg" > "$work/killed.toml"
    "$bin" train "$work/whole.toml" 2>"$work/whole.log" || { cat "$work/whole.log"; return 1; }
    if CURATE_TEST_ABORT_AFTER_STEP=25 "$bin" train "$work/killed.toml" 2>"$work/killed.log"; then
        echo "the abort hook did not stop the run"; return 1
    fi
    "$bin" train "$work/killed.toml" --resume 2>"$work/resumed.log" || { cat "$work/resumed.log"; return 1; }
    python3 - "$work/whole" "$work/killed" <<'PY'
import json, sys
a, b = sys.argv[1], sys.argv[2]
def losses(run):
    steps = {}
    for m in map(json.loads, open(f"{run}/metrics.jsonl")):
        if "loss" in m:
            steps[m["step"]] = m["loss"]  # a resumed run rewrites steps 21..25: the last word counts
    return [steps[k] for k in sorted(steps)]
la, lb = losses(a), losses(b)
assert len(la) == len(lb) == 40, (len(la), len(lb))
worst = max(abs(x - y) for x, y in zip(la, lb))
same = open(f"{a}/checkpoints/step-00000040/model.safetensors", "rb").read() == open(f"{b}/checkpoints/step-00000040/model.safetensors", "rb").read()
print(f"kill at step 25, resume from step 20: losses of all 40 steps {'identical' if worst == 0 else f'differ by up to {worst:.2e}'}; "
      f"final weights {'bit-identical' if same else 'differ'}")
PY
}

if ((resume_only)); then
    resume_check
    exit
fi

echo "| model | seq x batch | tokens/s (median) | MFU | last loss |"
echo "|---|---|---|---|---|"
run gpt2-124m "architecture = \"gpt2\"
vocab_size = 50304
hidden_size = 768
num_layers = 12
num_heads = 12
intermediate_size = 3072" 1024 16
run llama-350m "architecture = \"llama\"
vocab_size = 32000
hidden_size = 1024
num_layers = 24
num_heads = 16
num_kv_heads = 8
intermediate_size = 2816" 2048 8
run gpt2-124m-fp16 "architecture = \"gpt2\"
vocab_size = 50304
hidden_size = 768
num_layers = 12
num_heads = 12
intermediate_size = 3072" 1024 16 fp16
resume_check
