#!/usr/bin/env python3
"""Training throughput: curate's trainer against the same model trained by an
eager PyTorch loop in Python, side by side, same threads (CPU) or same GPU.

Both sides train the same LLaMA-style model (Hugging Face LlamaForCausalLM
on the Python side, built from the config.json curate writes) in fp32 (or
bf16 autocast with --bf16) with AdamW (PyTorch's fused kernel on CUDA, as
curate uses), gradient clipping and the same batch shape, on windows of the
bundled token shards. Each side runs WARMUP untimed steps, then STEPS timed ones;
the script prints tokens/s for both and the ratio.

    venv=$(scripts/libtorch.sh)
    PYTHONPATH=$venv/lib/python3.11/site-packages python3 scripts/bench-train.py \
        --curate-train TARGET/release/curate-train

Run Python with the same torch as curate links (2.11.0): PYTHONPATH puts
the cached venv's torch first; transformers comes from any environment.
On a GPU: --device cuda --bf16 (and LD_LIBRARY_PATH at torch's lib folder).
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[1]


def toml(args, data: Path, output: Path) -> str:
    return f"""[model]
architecture = "llama"
hidden_size = {args.hidden}
num_layers = {args.layers}
num_heads = {args.heads}
num_kv_heads = {args.kv_heads}
intermediate_size = {args.intermediate}
max_position_embeddings = {args.seq_len}
[data]
path = "{data}"
seq_len = {args.seq_len}
[training]
device = "{args.device}"
threads = {args.threads}
bf16 = {str(args.bf16).lower()}
max_steps = {args.warmup + args.steps}
batch_size = {args.batch}
learning_rate = 1e-3
warmup_steps = 0
weight_decay = 0.1
grad_clip = 1.0
output_dir = "{output}"
"""


def run_curate(args, work: Path) -> float:
    config = work / "train.toml"
    config.write_text(toml(args, args.data, work / "run"))
    subprocess.run([args.curate_train, "train", str(config)], check=True, stderr=subprocess.DEVNULL)
    lines = [json.loads(l) for l in (work / "run/metrics.jsonl").read_text().splitlines()]
    steps = [l for l in lines if "loss" in l][args.warmup:]
    # tokens/s over the timed steps: total tokens over total step time.
    seconds = sum((args.batch * args.seq_len) / l["tokens_per_s"] for l in steps)
    return len(steps) * args.batch * args.seq_len / seconds, work / "run/checkpoints" / f"step-{args.warmup + args.steps:08d}"


def pytorch_setup(args, checkpoint: Path, device, fused: bool):
    """The Python side's model (from the config.json curate wrote), its AdamW
    with curate's weight-decay groups, and the train split's tokens."""
    config = AutoConfig.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed_tokens" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    tokens = np.concatenate([np.fromfile(p, dtype=np.uint16) for p in sorted(args.data.glob("train-*.bin"))])
    return model, opt, tokens


def pytorch_step(args, trained, model, opt, tokens, rng, device):
    """One eager step on random windows: forward through `trained` (the
    model, or its DDP wrapper), backward, clipping, update. Returns the loss."""
    windows = (len(tokens) - 1) // args.seq_len
    idx = rng.integers(0, windows, args.batch)
    batch = torch.from_numpy(np.stack([tokens[i * args.seq_len: i * args.seq_len + args.seq_len + 1]
                                       for i in idx]).astype(np.int64)).to(device)
    x, y = batch[:, :-1], batch[:, 1:]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
        logits = trained(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def run_pytorch(args, checkpoint: Path) -> float:
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    device = torch.device(args.device)
    model, opt, tokens = pytorch_setup(args, checkpoint, device, fused=device.type == "cuda")
    rng = np.random.default_rng(1)
    timed = 0.0
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        pytorch_step(args, model, model, opt, tokens, rng, device).item()
        if step >= args.warmup:
            timed += time.perf_counter() - started
    return args.steps * args.batch * args.seq_len / timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate-train", required=True)
    ap.add_argument("--data", type=Path, default=ROOT / "fixtures/tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each side; medians are reported")
    args = ap.parse_args()
    curate_runs, python_runs = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            curate, checkpoint = run_curate(args, Path(tmp))
            curate_runs.append(curate)
            python_runs.append(run_pytorch(args, checkpoint))
    curate, python = statistics.median(curate_runs), statistics.median(python_runs)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {where}; LLaMA d={args.hidden} L={args.layers} "
          f"heads={args.heads}/{args.kv_heads} seq={args.seq_len} batch={args.batch}, {'bf16 autocast' if args.bf16 else 'fp32'}, {args.steps} timed steps, "
          f"median of {args.rounds} alternating runs")
    print("| trainer | tokens/s (median) | runs |")
    print("|---|---|---|")
    print(f"| eager PyTorch (transformers LlamaForCausalLM + torch.optim.AdamW) | {python:.0f} | "
          f"{', '.join(f'{r:.0f}' for r in python_runs)} |")
    print(f"| curate-train | {curate:.0f} | {', '.join(f'{r:.0f}' for r in curate_runs)} |")
    print(f"curate-train is {curate / python:.2f}x the eager PyTorch loop")


if __name__ == "__main__":
    main()
