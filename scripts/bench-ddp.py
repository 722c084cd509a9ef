#!/usr/bin/env python3
"""Data-parallel scaling on CPU: curate-train against PyTorch's
DistributedDataParallel, side by side, on the same model shapes, Gloo, one
thread per rank.

For each side: one rank (a plain loop, no process group) and N ranks
(curate-train --nproc-per-node N; torchrun with DDP), each rank training on
batches of BATCH sequences, so N ranks process N times the tokens per step.
Tokens/s counts every rank's tokens; scaling efficiency is
tokens/s(N) / (N × tokens/s(1)). Rounds alternate the sides; medians are
reported.

    venv=$(scripts/libtorch.sh)
    PYTHONPATH=$venv/lib/python3.11/site-packages python3 scripts/bench-ddp.py \
        --curate-train TARGET/release/curate-train

Python needs the same torch as curate links (2.11.0: PYTHONPATH puts the
cached venv's first) and transformers (any environment).

With --memory, only curate-train runs: one rank, then N ranks with
zero = 0, 1 and 2, a few steps each, and the script prints each run's
optimizer state per rank and every rank's peak resident memory, from the
metrics.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_train():
    """scripts/bench-train.py, whose model config and eager loop this
    benchmark shares (its name has a hyphen, so it is loaded by path)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_train", Path(__file__).with_name("bench-train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toml(args, output: Path, ranks: int) -> str:
    # bench-train's config at one CPU thread per rank, fp32, plus the global
    # batch and the ZeRO level.
    args.threads, args.device, args.bf16 = 1, "cpu", False
    return (bench_train().toml(args, args.data, output)
            + f"global_batch_size = {args.batch * ranks}\n[distributed]\nzero = {args.zero}\n")


def run_curate(args, work: Path, ranks: int):
    config = work / f"train-{ranks}.toml"
    run = work / f"run-{ranks}"
    config.write_text(toml(args, run, ranks))
    command = [args.curate_train, "train", str(config)]
    if ranks > 1:
        command += ["--nproc-per-node", str(ranks)]
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [l for l in lines if "loss" in l][args.warmup:]
    tokens = ranks * args.batch * args.seq_len
    seconds = sum(tokens / l["tokens_per_s"] for l in steps)
    return len(steps) * tokens / seconds, run / "checkpoints" / f"step-{args.warmup + args.steps:08d}"


def run_pytorch(args, checkpoint: Path, ranks: int) -> float:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    worker = [__file__, "--worker", "--checkpoint", str(checkpoint), "--result", str(out)] + sys.argv[1:]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if ranks == 1:
        subprocess.run([sys.executable] + worker, check=True, env=env)
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
        # torchrun's standalone rendezvous now and then loses a race for its
        # port; one more try, then its output.
        for attempt in range(2):
            done = subprocess.run(command + worker, env=env, capture_output=True, text=True)
            if done.returncode == 0:
                break
            if attempt == 1:
                sys.exit(f"torchrun failed:\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    return result["tokens_per_s"]


def worker(args) -> None:
    """One rank of the PyTorch side: DDP when torchrun started it."""
    import numpy as np
    import torch
    import torch.distributed as dist

    shared = bench_train()
    args.bf16 = False
    torch.set_num_threads(1)
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if ranks > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(1)
    device = torch.device("cpu")
    model, opt, tokens = shared.pytorch_setup(args, Path(args.checkpoint), device, fused=True)
    trained = torch.nn.parallel.DistributedDataParallel(model) if ranks > 1 else model
    rng = np.random.default_rng(1 + rank)
    timed = 0.0
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = shared.pytorch_step(args, trained, model, opt, tokens, rng, device)
        # The loss every rank reports, as curate-train averages it.
        if ranks > 1:
            mean = loss.detach().clone()
            dist.all_reduce(mean)
        loss.item()
        if step >= args.warmup:
            timed += time.perf_counter() - started
    if rank == 0:
        tokens_per_s = args.steps * ranks * args.batch * args.seq_len / timed
        Path(args.result).write_text(json.dumps({"tokens_per_s": tokens_per_s}))
    if ranks > 1:
        dist.destroy_process_group()


def memory(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks, zero in [(1, 0)] + [(args.ranks, z) for z in (0, 1, 2)]:
            args.zero = zero
            work = Path(tmp) / f"{ranks}-{zero}"
            work.mkdir()
            run_curate(args, work, ranks)
            lines = [json.loads(l) for l in (work / f"run-{ranks}/metrics.jsonl").read_text().splitlines()]
            last = [l for l in lines if "loss" in l][-1]
            rows.append((ranks, zero, last["optimizer_state_bytes"], last["peak_rss_bytes"], last["loss"]))
    params = rows[0][2] // 8
    print(f"LLaMA d={args.hidden} L={args.layers} heads={args.heads}/{args.kv_heads} intermediate={args.intermediate}: "
          f"{params / 1e6:.1f} M parameters, {args.warmup + args.steps} steps of {args.batch} x {args.seq_len} per rank, fp32")
    print("| ranks | zero | optimizer state per rank | peak RSS per rank | last loss |")
    print("|---|---|---|---|---|")
    for ranks, zero, state, rss, loss in rows:
        print(f"| {ranks} | {zero if ranks > 1 else '-'} | {state / 2**20:.1f} MiB | "
              f"{', '.join(f'{r / 2**20:.0f} MiB' for r in rss)} | {loss:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate-train", required=True)
    ap.add_argument("--data", type=Path, default=ROOT / "fixtures/tokens")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--zero", type=int, default=0, help="curate's distributed.zero (DDP has none)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="sequences per rank per step")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="optimizer state and peak memory per rank, curate only")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.memory:
        return memory(args)
    import torch

    runs = {(side, n): [] for side in ("curate", "pytorch") for n in (1, args.ranks)}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            for n in (1, args.ranks):
                tokens_per_s, checkpoint = run_curate(args, Path(tmp), n)
                runs[("curate", n)].append(tokens_per_s)
                runs[("pytorch", n)].append(run_pytorch(args, checkpoint, n))
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(f"torch {torch.__version__}, CPU, 1 thread per rank, Gloo; LLaMA d={args.hidden} L={args.layers} "
          f"heads={args.heads}/{args.kv_heads} seq={args.seq_len}, {args.batch} sequences per rank per step, "
          f"fp32, {args.steps} timed steps, median of {args.rounds} alternating rounds")
    print(f"| trainer | 1 rank tokens/s | {args.ranks} ranks tokens/s | scaling efficiency |")
    print("|---|---|---|---|")
    names = {"pytorch": "PyTorch DDP (transformers LlamaForCausalLM, fused AdamW)",
             "curate": f"curate-train (zero = {args.zero})"}
    for side in ("pytorch", "curate"):
        one, many = median[(side, 1)], median[(side, args.ranks)]
        print(f"| {names[side]} | {one:.0f} ({', '.join(f'{r:.0f}' for r in runs[(side, 1)])}) | "
              f"{many:.0f} ({', '.join(f'{r:.0f}' for r in runs[(side, args.ranks)])}) | "
              f"{many / (args.ranks * one):.1%} |")
    print(f"curate-train on {args.ranks} ranks is {median[('curate', args.ranks)] / median[('pytorch', args.ranks)]:.2f}x "
          f"PyTorch DDP's tokens/s")


if __name__ == "__main__":
    main()
