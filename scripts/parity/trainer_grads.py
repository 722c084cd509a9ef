#!/usr/bin/env python3
"""One training step's gradients: curate's trainer against Hugging Face
transformers on the same weights and the same batch (fp32).

For each model below, `curate-train gradients` builds the model from its
seed, takes the first batch of the bundled fixture shards, and writes the
weights, the batch, its loss and every weight's gradient. This script loads
the weights into GPT2LMHeadModel / LlamaForCausalLM / MistralForCausalLM
through the config.json curate wrote, runs the same batch forward and
backward, and prints the relative error ||ours - theirs|| / ||theirs|| of the
loss and of every gradient. It fails when any exceeds 1e-4.

    python3 scripts/parity/trainer_grads.py --curate-train TARGET/debug/curate-train [--device cuda]

Needs torch, transformers and safetensors (a scratch venv; any recent torch).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "gpt2": 'architecture = "gpt2"\nhidden_size = 64\nnum_layers = 3\nnum_heads = 4\n',
    "llama-gqa": 'architecture = "llama"\nhidden_size = 64\nnum_layers = 3\nnum_heads = 4\nnum_kv_heads = 2\n'
    "intermediate_size = 96\nrope_theta = 500000.0\n",
    "llama-tied-sliding-window": 'architecture = "llama"\nhidden_size = 64\nnum_layers = 2\nnum_heads = 8\n'
    "num_kv_heads = 1\ntie_embeddings = true\nsliding_window = 8\n",
    "llama-checkpointed": 'architecture = "llama"\nhidden_size = 64\nnum_layers = 3\nnum_heads = 4\nnum_kv_heads = 2\n',
}


def config_text(model: str, name: str, device: str) -> str:
    training = "activation_checkpointing = true\n" if "checkpointed" in name else ""
    return (
        f"[model]\n{model}max_position_embeddings = 64\n"
        f'[data]\npath = "{ROOT / "fixtures/tokens"}"\nseq_len = 32\n'
        f"[training]\nmax_steps = 1\nbatch_size = 4\ndevice = \"{device}\"\nseed = 7\n{training}"
    )


def rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.double(), theirs.double()
    return ((ours - theirs).norm() / theirs.norm().clamp_min(1e-30)).item()


def check(binary: str, name: str, model: str, work: Path, device: str) -> float:
    case = work / name
    case.mkdir()
    (case / "train.toml").write_text(config_text(model, name, device))
    subprocess.run([binary, "gradients", str(case / "train.toml"), "--out", str(case)], check=True,
                   stdout=subprocess.DEVNULL)
    config = AutoConfig.from_pretrained(case)
    hf = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    weights = load_file(case / "model.safetensors")
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    assert not missing and not unexpected, (missing, unexpected)
    hf.train()
    batch = load_file(case / "batch.safetensors")
    logits = hf(input_ids=batch["input_ids"]).logits
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             batch["targets"].reshape(-1))
    loss.backward()
    ours_loss = json.loads((case / "loss.json").read_text())["loss"]
    grads = load_file(case / "gradients.safetensors")
    worst = abs(ours_loss - loss.item()) / abs(loss.item())
    print(f"{name}: loss curate {ours_loss:.6f} transformers {loss.item():.6f} (rel {worst:.1e})")
    params = dict(hf.named_parameters())
    for param_name, ours in sorted(grads.items()):
        theirs = params[param_name].grad
        error = rel(ours, theirs)
        worst = max(worst, error)
        print(f"  {param_name:50s} {error:.2e}")
    print(f"{name}: worst relative error {worst:.2e} over {len(grads)} gradients")
    return worst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curate-train", required=True)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu",
                    help="where curate-train computes (cpu, cuda); transformers always runs on the CPU")
    args = ap.parse_args()
    torch.set_num_threads(2)
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in CASES.items():
            worst[name] = check(args.curate_train, name, model, Path(tmp), args.device)
    print()
    print("| model | worst relative error (loss and every gradient) |")
    print("|---|---|")
    for name, w in worst.items():
        print(f"| {name} | {w:.1e} |")
    bad = [n for n, w in worst.items() if not w <= args.tolerance]
    if bad:
        print(f"FAIL: {bad} above {args.tolerance}")
        return 1
    print(f"all within {args.tolerance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
