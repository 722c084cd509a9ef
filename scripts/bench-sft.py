#!/usr/bin/env python3
"""Supervised fine-tuning throughput: curate against TRL's SFTTrainer, side
by side, on the same model, the same chat data, the same CPU threads.

Both sides start from one LLaMA-style model made with transformers (random
weights, saved as a Hugging Face folder with the chat fixture's tokenizer
and the LLaMA 3 template of fixtures/chat/), fine-tune on the same
conversations (made from fixtures/chat/conversations.jsonl, varied in
length) with the loss on assistant tokens only, examples packed by best-fit
decreasing into sequences of --seq-len, --batch sequences per step, AdamW
at the same learning rate, fp32. Each side runs WARMUP untimed steps, then
STEPS timed ones; tokens/s counts the tokens of the conversations (not the
padding). TRL's SFTConfig turns gradient checkpointing on by default; it is
off here, as curate's activation_checkpointing is by default. Also printed:
the share of padding with and without packing.

    python=$(scripts/pyref.sh)      # transformers; TRL from a scratch venv:
    pip install trl==1.16.0 datasets
    python3 scripts/bench-sft.py --curate TARGET/release/curate --threads 2

Run Python with the same torch as curate links (2.11.0).
"""
import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import transformers as T

ROOT = Path(__file__).resolve().parents[1]


def conversations(n: int) -> list:
    """n conversations from the fixture's (those every template renders),
    their turns repeated a varying number of times so lengths spread."""
    base = []
    for line in open(ROOT / "fixtures/chat/conversations.jsonl", encoding="utf-8"):
        record = json.loads(line)
        roles = [m["role"] for m in record["messages"]]
        if "tool" in roles or roles[-1] != "assistant":
            continue
        base.append(record["messages"])
    out = []
    for i in range(n):
        messages = [dict(m) for m in base[i % len(base)]]
        for m in messages:
            m["content"] = " ".join([m["content"]] * (1 + (i * 7) % 5))
            m.pop("tool_calls", None)
            m.pop("name", None)
        out.append({"id": f"c{i}", "messages": messages})
    return out


def make_model(args, folder: Path) -> None:
    torch.manual_seed(0)
    config = T.LlamaConfig(vocab_size=2048, hidden_size=args.hidden, intermediate_size=args.intermediate,
                           num_hidden_layers=args.layers, num_attention_heads=args.heads,
                           num_key_value_heads=args.kv_heads, max_position_embeddings=args.seq_len,
                           bos_token_id=2002, eos_token_id=2008)
    T.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    shutil.copy(ROOT / "fixtures/chat/tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.load(open(ROOT / "fixtures/chat/tokenizer_config.json"))
    tokenizer_config["chat_template"] = (ROOT / "fixtures/chat/llama3.jinja").read_text()
    json.dump(tokenizer_config, open(folder / "tokenizer_config.json", "w"))


def run_curate(args, work: Path, model: Path, data: Path) -> tuple:
    tokens = work / "tokens"
    subprocess.run([args.curate, "tokenize", "--chat", "--input", str(data), "--tokenizer", str(model / "tokenizer.json"),
                    "--output", str(tokens), "--progress", "none"], check=True, stderr=subprocess.DEVNULL)
    shares = {}
    for packing in (False, True):
        run = work / f"run-{packing}"
        (work / "sft.toml").write_text(f"""[model]
init_from = "{model}"
[data]
path = "{tokens}"
seq_len = {args.seq_len}
packing = {str(packing).lower()}
[training]
device = "cpu"
threads = {args.threads}
max_steps = {args.warmup + args.steps if packing else 1}
batch_size = {args.batch}
learning_rate = 1e-4
warmup_steps = 0
weight_decay = 0.0
output_dir = "{run}"
""")
        subprocess.run([args.curate, "train", str(work / "sft.toml")], check=True, stderr=subprocess.DEVNULL)
        lines = [json.loads(l) for l in open(run / "metrics.jsonl")]
        shares[packing] = lines[0]["packing"]["padding_share"]
    steps = [l for l in lines if "loss" in l]
    elapsed = [s["elapsed_s"] for s in steps]
    timed = elapsed[-1] - elapsed[args.warmup - 1]
    real = args.steps * args.batch * args.seq_len * (1 - shares[True])
    return real / timed, shares


def run_trl(args, work: Path, model: Path, data: Path) -> float:
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(args.threads)
    marks = []

    class Clock(T.TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    config = SFTConfig(output_dir=str(work / "trl"), max_length=args.seq_len, packing=True, packing_strategy="bfd",
                       assistant_only_loss=True, per_device_train_batch_size=args.batch,
                       max_steps=args.warmup + args.steps, learning_rate=1e-4, lr_scheduler_type="constant",
                       weight_decay=0.0, logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True,
                       dataloader_num_workers=0, seed=1, include_num_input_tokens_seen="non_padding",
                       gradient_checkpointing=False,
                       disable_tqdm=True)
    trainer = SFTTrainer(model=str(model), args=config, train_dataset=load_dataset("json", data_files=str(data))["train"],
                         processing_class=T.AutoTokenizer.from_pretrained(model), callbacks=[Clock()])
    trainer.train()
    (t0, n0), (t1, n1) = marks[args.warmup - 1], marks[-1]
    return (n1 - n0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--conversations", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each side; medians are reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, data = work / "model", work / "chats.jsonl"
        make_model(args, model)
        with open(data, "w") as f:
            for c in conversations(args.conversations):
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        ours, theirs = [], []
        for r in range(args.rounds):
            round_dir = work / f"round{r}"
            round_dir.mkdir()
            rate, shares = run_curate(args, round_dir, model, data)
            ours.append(rate)
            theirs.append(run_trl(args, round_dir, model, data))
            print(f"round {r + 1}: curate {ours[-1]:.0f} tokens/s, TRL {theirs[-1]:.0f} tokens/s", flush=True)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"model: LLaMA {args.layers}x{args.hidden}, seq_len {args.seq_len}, batch {args.batch}, "
          f"{args.threads} threads, {args.conversations} conversations")
    print(f"padding share: packed {shares[True]:.1%}, one example per row {shares[False]:.1%}")
    print(f"curate {a:.0f} tokens/s, TRL SFTTrainer {b:.0f} tokens/s, ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
