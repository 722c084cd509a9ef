#!/usr/bin/env python3
"""Hugging Face transformers as the reference for the trainer's tests
(trainer/tests/pretrained.rs runs it with the python of scripts/pyref.sh).

    hf_models.py make OUT [chat]          every case (or the chat cases) from random initialisation, saved in OUT/CASE
    hf_models.py logits IDS OUT DIR...    logits of each DIR's model on IDS (a JSON list of lists) -> OUT (safetensors, key = DIR)
    hf_models.py loss DIR BATCH OUT       loss and gradients of a batch (input_ids, targets, [position_ids]) -> OUT
    hf_models.py tokenizer TEXT DIR...    AutoTokenizer(DIR).encode(TEXT) for each DIR, as JSON lines
    hf_models.py perplexity DIR TEXTS MAX perplexity of each {"text"} of TEXTS in chunks of MAX tokens, as JSON
    hf_models.py generate DIR PROMPTS N   greedy continuations (N new tokens at most) of each {"prompt"}, as JSON lines
    hf_models.py lora-make BASE OUT TARGETS    a PEFT LoRA adapter (r 4, alpha 8, A and B random) on BASE's model
    hf_models.py lora-loss BASE ADAPTER BATCH OUT  loss and the adapters' gradients of PeftModel on a batch -> OUT
    hf_models.py lora-logits BASE ADAPTER IDS OUT  logits of PeftModel and of its merge_and_unload -> OUT
    hf_models.py dpo BASE ADAPTER|- BATCH LOSS BETA SMOOTHING OUT
                                          TRL's DPO formulas on a batch of pairs (rows: chosen, rejected, ...):
                                          loss, rewards, the policy's and reference's log-probabilities, gradients

Everything in fp32 on the CPU; the seed is fixed, so a case is the same
model on every run.
"""
import json
import sys

import torch
import transformers as T
from safetensors.torch import load_file, save_file

VOCAB = 2000  # the bundled fixtures/tokenizer.json's

SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, max_position_embeddings=128, bos_token_id=1, eos_token_id=0)

CASES = {
    # LLaMA with grouped-query attention and LLaMA 3.1's rotary scaling.
    "llama-gqa": lambda: T.LlamaConfig(**SMALL, num_key_value_heads=2, rope_theta=500000.0,
                                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 64}),
    # A head size apart from hidden / heads, tied embeddings, saved in bf16 as several shards.
    "llama-tied-sharded-bf16": lambda: T.LlamaConfig(**SMALL, num_key_value_heads=1, head_dim=32,
                                                     tie_word_embeddings=True),
    "mistral-sliding-window": lambda: T.MistralConfig(**SMALL, num_key_value_heads=2, sliding_window=6),
    "qwen2": lambda: T.Qwen2Config(**SMALL, num_key_value_heads=2, tie_word_embeddings=True),
    "gpt2": lambda: T.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                                 bos_token_id=0, eos_token_id=0),
}

# For the chat fixtures (fixtures/chat/tokenizer.json has 2011 tokens), with
# room for their longest conversation, and weights large enough that
# attention is sharp (a token seeing past its example shows in the loss).
CHAT = dict(SMALL, vocab_size=2048, max_position_embeddings=512, initializer_range=0.2)
CHAT_CASES = {
    "llama-chat": lambda: T.LlamaConfig(**CHAT, num_key_value_heads=2),
    "mistral-chat": lambda: T.MistralConfig(**CHAT, num_key_value_heads=2, sliding_window=16),
}


def make(out: str, which: str = "models") -> None:
    for case in CHAT_CASES if which == "chat" else CASES:
        make_case(case, f"{out}/{case}")


def make_case(case: str, out: str) -> None:
    torch.manual_seed(0)
    config = {**CASES, **CHAT_CASES}[case]()
    model = T.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        # Non-zero biases and norms, so that a missed one shows in the logits.
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    kwargs = {}
    if "bf16" in case:
        model = model.to(torch.bfloat16)
    if "sharded" in case:
        kwargs["max_shard_size"] = "100KB"
    model.save_pretrained(out, **kwargs)


def load(path: str):
    model = T.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def logits(ids: str, out: str, *paths: str) -> None:
    results = {}
    for path in paths:
        with torch.no_grad():
            results[path] = load(path)(torch.tensor(json.loads(ids))).logits.contiguous()
    save_file(results, out)


def loss(path: str, batch: str, out: str) -> None:
    model = load(path)
    tensors = load_file(batch)
    # Packed examples: transformers finds them from the position ids (with no
    # attention mask and no cache) and keeps attention inside each.
    result = model(tensors["input_ids"], position_ids=tensors.get("position_ids"), use_cache=False).logits
    value = torch.nn.functional.cross_entropy(result.reshape(-1, result.shape[-1]), tensors["targets"].reshape(-1))
    value.backward()
    grads = {name: p.grad.contiguous() for name, p in model.named_parameters() if p.grad is not None}
    grads["loss"] = value.detach().reshape(1)
    save_file(grads, out)


def tokenizer(text: str, *paths: str) -> None:
    for path in paths:
        tok = T.AutoTokenizer.from_pretrained(path)
        print(json.dumps({"ids": tok.encode(text, add_special_tokens=False), "eos": tok.eos_token}))


def perplexity(path: str, texts: str, max_length: str) -> None:
    model, tok = load(path), T.AutoTokenizer.from_pretrained(path)
    n = int(max_length)
    nll, tokens = 0.0, 0
    for line in open(texts, encoding="utf-8"):
        ids = tok(json.loads(line)["text"])["input_ids"]
        for start in range(0, len(ids), n):
            chunk = torch.tensor([ids[start:start + n]])
            if chunk.shape[1] < 2:
                continue
            with torch.no_grad():
                logits = model(chunk).logits[0, :-1]
            nll += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
            tokens += chunk.shape[1] - 1
    print(json.dumps({"nll_per_token": nll / tokens, "tokens": tokens}))


def generate(path: str, prompts: str, max_new_tokens: str) -> None:
    model, tok = load(path), T.AutoTokenizer.from_pretrained(path)
    for line in open(prompts, encoding="utf-8"):
        record = json.loads(line)
        ids = torch.tensor([tok.encode(record["prompt"], add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=int(max_new_tokens), do_sample=False,
                                 pad_token_id=tok.eos_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        print(json.dumps({"prompt": record["prompt"], "answer": text.split("\n")[0]}, ensure_ascii=False))


def lora_make(base: str, out: str, targets: str) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets.split(","),
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(load(base), config).save_pretrained(out)


def peft_model(base: str, adapter: str, trainable: bool = False):
    from peft import PeftModel

    return PeftModel.from_pretrained(load(base), adapter, is_trainable=trainable)


def curate_name(peft_name: str) -> str:
    """base_model.model.X.lora_A.default.weight -> X.lora_A.weight"""
    return peft_name.removeprefix("base_model.model.").replace(".default.", ".")


def lora_loss(base: str, adapter: str, batch: str, out: str) -> None:
    model = peft_model(base, adapter, trainable=True)
    tensors = load_file(batch)
    result = model(input_ids=tensors["input_ids"], position_ids=tensors.get("position_ids"), use_cache=False).logits
    value = torch.nn.functional.cross_entropy(result.reshape(-1, result.shape[-1]), tensors["targets"].reshape(-1))
    value.backward()
    grads = {curate_name(n): p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None}
    grads["loss"] = value.detach().reshape(1)
    save_file(grads, out)


def lora_logits(base: str, adapter: str, ids: str, out: str) -> None:
    model = peft_model(base, adapter)
    inputs = torch.tensor(json.loads(ids))
    with torch.no_grad():
        adapted = model(inputs).logits.contiguous()
        merged = model.merge_and_unload()(inputs).logits.contiguous()
    save_file({"adapted": adapted, "merged": merged}, out)


def dpo(base: str, adapter: str, batch: str, loss_type: str, beta: str, smoothing: str, out: str) -> None:
    """TRL's DPOTrainer.dpo_loss on log-probabilities summed over each
    completion's tokens (averaged per token for IPO); the reference is the
    model at the start, without adapters under LoRA."""
    beta, smoothing = float(beta), float(smoothing)
    model = load(base) if adapter == "-" else peft_model(base, adapter, trainable=True)
    tensors = load_file(batch)
    ids, targets = tensors["input_ids"], tensors["targets"]
    mask = targets != -100

    def logps(m):
        logits = m(input_ids=ids, use_cache=False).logits.float()
        per_token = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(2)).squeeze(2)
        sums = (per_token * mask).sum(-1)
        return sums / mask.sum(-1) if loss_type == "ipo" else sums

    with torch.no_grad():
        if adapter == "-":
            reference = logps(model)
        else:
            with model.disable_adapter():
                reference = logps(model)
    policy = logps(model)
    chosen, rejected = policy[0::2], policy[1::2]
    ref_chosen, ref_rejected = reference[0::2], reference[1::2]
    logits = (chosen - rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = (-torch.nn.functional.logsigmoid(beta * logits) * (1 - smoothing)
                  - torch.nn.functional.logsigmoid(-beta * logits) * smoothing)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:
        losses = (logits - 1 / (2 * beta)) ** 2
    chosen_rewards = beta * (chosen - ref_chosen).detach()
    rejected_rewards = beta * (rejected - ref_rejected).detach()
    loss = losses.mean()
    loss.backward()
    result = {curate_name(n): p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None}
    result.update({
        "loss": loss.detach().reshape(1),
        "reference": torch.stack([ref_chosen, ref_rejected], 1).contiguous(),
        "rewards/chosen": chosen_rewards.mean().reshape(1),
        "rewards/rejected": rejected_rewards.mean().reshape(1),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean().reshape(1),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().reshape(1),
        "logps/chosen": chosen.detach().mean().reshape(1),
        "logps/rejected": rejected.detach().mean().reshape(1),
    })
    save_file(result, out)


if __name__ == "__main__":
    commands = {"make": make, "logits": logits, "loss": loss, "tokenizer": tokenizer, "perplexity": perplexity,
                "generate": generate, "lora-make": lora_make, "lora-loss": lora_loss, "lora-logits": lora_logits, "dpo": dpo}
    commands[sys.argv[1]](*sys.argv[2:])
