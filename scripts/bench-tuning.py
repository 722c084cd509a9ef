#!/usr/bin/env python3
"""LoRA and DPO: curate against TRL + PEFT, side by side, on the same model,
data and CPU threads; and LoRA's memory against full fine-tuning.

    python3 scripts/bench-tuning.py --curate TARGET/release/curate --mode lora|dpo|memory [--threads 2]

- lora: supervised fine-tuning with LoRA adapters (rank 16, alpha 32, every
  linear projection) on the conversations of scripts/bench-sft.py, packed
  into sequences of --seq-len; TRL's SFTTrainer with a PEFT LoraConfig of
  the same settings. Tokens/s of the conversations.
- dpo: DPO (sigmoid, beta 0.1) on preference pairs made from
  fixtures/chat/preferences.jsonl, --batch pairs a step, the reference
  log-probabilities computed before the timed steps on both sides (TRL's
  precompute_ref_log_probs). Pairs/s, and tokens/s at the pairs' mean
  length. With --lora, both sides train LoRA adapters.
- memory: curate's peak resident memory, weights, gradients and optimizer
  state: full fine-tuning against LoRA (and with bf16: full fine-tuning
  under bf16 autocast against LoRA on a bf16 base), on a larger model.

Each side runs WARMUP untimed steps, then STEPS timed ones, in its own
process (peak memory is each process's own); medians of --rounds.
Python needs torch 2.11.0 (the venv of scripts/libtorch.sh on PYTHONPATH,
or a .pth), transformers 5.24.0, trl 1.16.0, peft 0.21.2 and datasets.
"""
import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def make_model(args, folder: Path) -> None:
    import torch
    import transformers as T

    torch.manual_seed(0)
    config = T.LlamaConfig(vocab_size=2048, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                           num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4,
                           max_position_embeddings=args.seq_len, bos_token_id=2002, eos_token_id=2006)
    T.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    shutil.copy(ROOT / "fixtures/chat/tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.load(open(ROOT / "fixtures/chat/tokenizer_config.json"))
    tokenizer_config["chat_template"] = (ROOT / "fixtures/chat/llama3.jinja").read_text()
    json.dump(tokenizer_config, open(folder / "tokenizer_config.json", "w"))


def preference_pairs(n: int) -> list:
    base = [json.loads(l) for l in open(ROOT / "fixtures/chat/preferences.jsonl") if '"prompt": [' in l]
    out = []
    for i in range(n):
        r = json.loads(json.dumps(base[i % len(base)]))
        r["id"] = f"p{i}"
        r["chosen"][0]["content"] = " ".join([r["chosen"][0]["content"]] * (1 + i % 3))
        out.append(r)
    return out


def curate_run(args, work: Path, model: Path, data: Path, tables: str, bf16: bool = False) -> dict:
    tokens = work / "tokens"
    if not tokens.exists():
        subprocess.run([args.curate, "tokenize", "--chat", "--input", str(data), "--tokenizer",
                        str(model / "tokenizer.json"), "--output", str(tokens), "--progress", "none"],
                       check=True, stderr=subprocess.DEVNULL)
    run = work / f"run-{time.monotonic_ns()}"
    (work / "train.toml").write_text(f"""[model]
init_from = "{model}"
[data]
path = "{tokens}"
seq_len = {args.seq_len}
[training]
device = "cpu"
threads = {args.threads}
max_steps = {args.warmup + args.steps}
batch_size = {args.batch}
learning_rate = 1e-4
warmup_steps = 0
weight_decay = 0.0
bf16 = {str(bf16).lower()}
output_dir = "{run}"
{tables}""")
    subprocess.run([args.curate, "train", str(work / "train.toml")], check=True, stderr=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(run / "metrics.jsonl")]
    steps = [l for l in lines if "loss" in l]
    timed = steps[-1]["elapsed_s"] - steps[args.warmup - 1]["elapsed_s"]
    stats = json.load(open(tokens / "stats.json"))
    packing = next((l["packing"] for l in lines if "packing" in l), {})
    return {"seconds": timed, "peak_rss": max(steps[-1]["peak_rss_bytes"]), "weights": steps[-1]["weight_bytes"],
            "gradients": steps[-1]["gradient_bytes"], "optimizer_state": steps[-1]["optimizer_state_bytes"],
            "padding": packing.get("padding_share", 0.0),
            "tokens_per_pair": stats["tokens"] / max(stats["pairs"], 1)}


def trl_child(args) -> None:
    """Runs one TRL side in this process and prints its numbers as JSON."""
    import torch
    import transformers as T
    from datasets import load_dataset
    from peft import LoraConfig

    torch.set_num_threads(args.threads)
    marks = []

    class Clock(T.TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    common = dict(output_dir=str(Path(args.work) / "trl"), per_device_train_batch_size=args.batch,
                  max_steps=args.warmup + args.steps, learning_rate=1e-4, lr_scheduler_type="constant", weight_decay=0.0,
                  logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=1,
                  gradient_checkpointing=False, disable_tqdm=True, max_length=args.seq_len)
    peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM") if args.lora else None
    dataset = load_dataset("json", data_files=args.data)["train"]
    tokenizer = T.AutoTokenizer.from_pretrained(args.model)
    if args.mode == "dpo":
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(**common, beta=0.1, loss_type="sigmoid", precompute_ref_log_probs=True,
                           include_num_input_tokens_seen="non_padding")
        trainer = DPOTrainer(model=args.model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft, callbacks=[Clock()])
    else:
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(**common, packing=True, packing_strategy="bfd", assistant_only_loss=True,
                           include_num_input_tokens_seen="non_padding")
        trainer = SFTTrainer(model=args.model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft, callbacks=[Clock()])
    trainer.train()
    (t0, n0), (t1, n1) = marks[args.warmup - 1], marks[-1]
    print(json.dumps({"seconds": t1 - t0, "tokens": n1 - n0,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def trl_run(args, work: Path, model: Path, data: Path, lora: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mode", args.mode, "--work", str(work), "--model", str(model),
           "--data", str(data), "--threads", str(args.threads), "--batch", str(args.batch), "--seq-len",
           str(args.seq_len), "--warmup", str(args.warmup), "--steps", str(args.steps), "--curate", args.curate]
    if lora:
        cmd.append("--lora")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


LORA = '[lora]\nrank = 16\nalpha = 32\ntarget_modules = ["all-linear"]\n'


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--mode", choices=["lora", "dpo", "memory"], required=True)
    ap.add_argument("--lora", action="store_true", help="dpo: train LoRA adapters on both sides")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        trl_child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, data = work / "model", work / "data.jsonl"
        make_model(args, model)
        if args.mode == "dpo":
            records = preference_pairs(400)
        else:
            from importlib import import_module
            records = import_module("bench-sft").conversations(600)
        with open(data, "w") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"model: LLaMA {args.layers}x{args.hidden}, seq_len {args.seq_len}, batch {args.batch}, "
              f"{args.threads} threads", flush=True)
        if args.mode == "memory":
            runs = [
                ("full fine-tuning", ""),
                ("LoRA r=16, all-linear", LORA),
                ("full fine-tuning, bf16 autocast", "X"),
                ("LoRA r=16, all-linear, bf16 base", LORA + "base_bf16 = true\n"),
            ]
            for name, tables in runs:
                bf16 = "bf16" in name
                r = curate_run(args, work, model, data, "" if tables == "X" else tables, bf16=bf16)
                print(f"curate {name}: peak RSS {r['peak_rss'] / 2**20:.0f} MiB, weights {r['weights'] / 2**20:.0f} MiB, "
                      f"gradients {r['gradients'] / 2**20:.1f} MiB, optimizer state {r['optimizer_state'] / 2**20:.1f} MiB",
                      flush=True)
            return
        tables = LORA if args.mode == "lora" or args.lora else ""
        if args.mode == "dpo":
            tables += "[dpo]\nbeta = 0.1\n"
        ours, theirs = [], []
        for r in range(args.rounds):
            c = curate_run(args, work, model, data, tables)
            t = trl_run(args, work, model, data, args.mode == "lora" or args.lora)
            if args.mode == "dpo":
                # Pairs a second; tokens at the pairs' mean length.
                per_pair = c["tokens_per_pair"]
                ours.append(args.steps * args.batch / c["seconds"])
                theirs.append(args.steps * args.batch / t["seconds"])
                print(f"round {r + 1}: curate {ours[-1]:.2f} pairs/s ({ours[-1] * per_pair:.0f} tokens/s), "
                      f"TRL {theirs[-1]:.2f} pairs/s; peak RSS curate {c['peak_rss'] / 2**20:.0f} MiB, "
                      f"TRL {t['peak_rss'] / 2**20:.0f} MiB", flush=True)
            else:
                ours.append(args.steps * args.batch * args.seq_len * (1 - c["padding"]) / c["seconds"])
                theirs.append(t["tokens"] / t["seconds"])
                print(f"round {r + 1}: curate {ours[-1]:.0f} tokens/s, TRL+PEFT {theirs[-1]:.0f} tokens/s; peak RSS "
                      f"curate {c['peak_rss'] / 2**20:.0f} MiB, TRL {t['peak_rss'] / 2**20:.0f} MiB", flush=True)
        a, b = statistics.median(ours), statistics.median(theirs)
        unit = "pairs/s" if args.mode == "dpo" else "tokens/s"
        print(f"{args.mode}{' + LoRA' if args.lora else ''}: curate {a:.2f} {unit}, TRL {b:.2f} {unit}, ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
