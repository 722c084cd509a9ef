//! `curate export`: a checkpoint (or any model folder curate loads) as a
//! Hugging Face folder that `AutoModelForCausalLM` and `AutoTokenizer` load
//! as they are, and so vLLM and lm-evaluation-harness too:
//!
//! ```text
//! OUT/config.json              architectures, model_type, sizes, rotary settings, special ids
//! OUT/generation_config.json   the source's, or the special ids
//! OUT/model.safetensors        or model-0000i-of-0000n.safetensors + model.safetensors.index.json
//! OUT/tokenizer.json           and tokenizer_config.json (+ the chat template, when there is one)
//! ```
//!
//! The folder is written under a hidden temporary name beside OUT and
//! renamed into place when complete.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use super::adapter::is_adapter_weight;
use super::{hf_config, load, variables};
use crate::checkpoint::{read_json, write_json, write_safetensors};

/// Tokenizer files copied from a Hugging Face folder when present.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
];

pub struct Options {
    pub output: PathBuf,
    /// A tokenizer.json, or a folder holding one (with its
    /// tokenizer_config.json); by default the source folder's own.
    pub tokenizer: Option<PathBuf>,
    /// A Jinja chat template to ship in tokenizer_config.json.
    pub chat_template: Option<PathBuf>,
    /// Float, BFloat16 or Half.
    pub dtype: Kind,
    /// Weights beyond this many bytes are split into shards, as
    /// `save_pretrained(max_shard_size=...)` does.
    pub max_shard_bytes: u64,
    /// A LoRA model: fold the adapters into the weights and write the whole
    /// model (as PEFT's `merge_and_unload`), instead of the adapter alone.
    pub merge: bool,
}

pub struct Summary {
    pub source: PathBuf,
    pub files: Vec<String>,
    pub parameters: i64,
}

pub fn dtype_of(name: &str) -> anyhow::Result<Kind> {
    Ok(match name {
        "float32" | "fp32" => Kind::Float,
        "bfloat16" | "bf16" => Kind::BFloat16,
        "float16" | "fp16" => Kind::Half,
        other => bail!("--dtype: {other:?} is not float32, bfloat16 or float16"),
    })
}

/// A size as transformers writes it: "5GB" (10^9 bytes), "500MB", "100KB",
/// "2GiB" (2^30), or plain bytes.
pub fn size_of(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        _ => bail!("--max-shard-size: {text:?} is not a size such as 5GB, 500MB or 100KB"),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 => Ok((n * scale as f64) as u64),
        _ => bail!("--max-shard-size: {text:?} is not a size such as 5GB, 500MB or 100KB"),
    }
}

fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        _ => "float32",
    }
}

pub fn export(source: &Path, o: &Options) -> anyhow::Result<Summary> {
    if o.output.exists() && std::fs::read_dir(&o.output).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{}: exists and is not empty; choose another --output", o.output.display());
    }
    let loaded = load(source, Device::Cpu)?;
    let tokenizer = tokenizer_source(o.tokenizer.as_deref(), &loaded.dir)?;
    if loaded.lora.is_some() && o.merge {
        loaded.model.merge_lora();
    }
    let name = o.output.file_name().context("--output has no folder name")?.to_string_lossy().into_owned();
    let parent = match o.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| parent.display().to_string())?;
    let temp = parent.join(format!(".{name}.partial.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir(&temp).with_context(|| temp.display().to_string())?;
    let written = match &loaded.lora {
        Some(lora) if !o.merge => write_adapter(&temp, &loaded, lora, tokenizer.as_ref(), o),
        _ => write_folder(&temp, &loaded, tokenizer.as_ref(), o),
    };
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    if o.output.exists() {
        // An empty folder (checked above) that the rename cannot replace.
        std::fs::remove_dir(&o.output).with_context(|| o.output.display().to_string())?;
    }
    std::fs::rename(&temp, &o.output).with_context(|| format!("renaming into {}", o.output.display()))?;
    let mut files: Vec<String> = std::fs::read_dir(&o.output)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    let parameters = model_weights(&loaded, o).iter().map(|(_, t)| t.numel() as i64).sum();
    Ok(Summary { source: loaded.dir, files, parameters })
}

enum TokenizerSource {
    /// A Hugging Face folder's tokenizer files.
    Folder(PathBuf),
    /// A bare tokenizer.json (as `curate tokenizer train` writes it).
    File(PathBuf),
}

fn tokenizer_source(asked: Option<&Path>, model_dir: &Path) -> anyhow::Result<Option<TokenizerSource>> {
    match asked {
        Some(p) if p.is_dir() => {
            if !p.join("tokenizer.json").is_file() {
                bail!("--tokenizer {}: the folder has no tokenizer.json", p.display());
            }
            Ok(Some(TokenizerSource::Folder(p.to_owned())))
        }
        Some(p) if p.is_file() => Ok(Some(TokenizerSource::File(p.to_owned()))),
        Some(p) => bail!("--tokenizer {}: no such file or folder", p.display()),
        None if model_dir.join("tokenizer.json").is_file() => Ok(Some(TokenizerSource::Folder(model_dir.to_owned()))),
        None => Ok(None),
    }
}

/// What is written: the adapters of an unmerged LoRA model, else the
/// model's weights (merged adapters left out).
fn model_weights(loaded: &super::Loaded, o: &Options) -> Vec<(String, Tensor)> {
    let adapters_only = loaded.lora.is_some() && !o.merge;
    variables(&loaded.vs).into_iter().filter(|(n, _)| is_adapter_weight(n) == adapters_only).collect()
}

/// A PEFT adapter folder, and the tokenizer files when there are some.
fn write_adapter(
    temp: &Path,
    loaded: &super::Loaded,
    lora: &super::Lora,
    tokenizer: Option<&TokenizerSource>,
    o: &Options,
) -> anyhow::Result<()> {
    let weights: Vec<(String, Tensor)> =
        model_weights(loaded, o).into_iter().map(|(n, t)| (n, t.detach().to_kind(o.dtype))).collect();
    super::adapter::write(temp, &lora.spec, &lora.config, loaded.config.architecture, &lora.base, &weights)?;
    if let Some(tokenizer) = tokenizer {
        write_tokenizer(temp, loaded, tokenizer, o)?;
    }
    Ok(())
}

fn write_folder(
    temp: &Path,
    loaded: &super::Loaded,
    tokenizer: Option<&TokenizerSource>,
    o: &Options,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    let dtype = dtype_name(o.dtype);
    write_weights(temp, &model_weights(loaded, o), o.dtype, o.max_shard_bytes)?;
    write_json(&temp.join("config.json"), &hf_config::write(config, loaded.bos_id, &loaded.eos_ids, dtype))?;
    let generation = loaded.dir.join("generation_config.json");
    if generation.is_file() {
        std::fs::copy(&generation, temp.join("generation_config.json"))
            .with_context(|| generation.display().to_string())?;
    } else {
        let eos = match loaded.eos_ids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        write_json(
            &temp.join("generation_config.json"),
            &json!({ "_from_model_config": true, "bos_token_id": loaded.bos_id, "eos_token_id": eos }),
        )?;
    }
    let Some(tokenizer) = tokenizer else {
        bail!(
            "{}: has no tokenizer.json; pass --tokenizer with the tokenizer.json the data was tokenized with",
            loaded.dir.display()
        );
    };
    write_tokenizer(temp, loaded, tokenizer, o)
}

/// The tokenizer files, and a tokenizer_config.json when the source has none.
fn write_tokenizer(
    temp: &Path,
    loaded: &super::Loaded,
    tokenizer: &TokenizerSource,
    o: &Options,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    let tokenizer_json = match tokenizer {
        TokenizerSource::Folder(dir) => {
            for file in TOKENIZER_FILES {
                let from = dir.join(file);
                if from.is_file() {
                    std::fs::copy(&from, temp.join(file)).with_context(|| from.display().to_string())?;
                }
            }
            dir.join("tokenizer.json")
        }
        TokenizerSource::File(file) => {
            std::fs::copy(file, temp.join("tokenizer.json")).with_context(|| file.display().to_string())?;
            file.clone()
        }
    };
    let tok = tokenizers::Tokenizer::from_file(&tokenizer_json)
        .map_err(|e| anyhow::anyhow!("{}: not a tokenizer.json: {e}", tokenizer_json.display()))?;
    let size = tok.get_vocab_size(true);
    if size > config.vocab() {
        bail!(
            "{}: has {size} tokens, more than the model's vocabulary of {}",
            tokenizer_json.display(),
            config.vocab()
        );
    }
    let config_path = temp.join("tokenizer_config.json");
    let mut tokenizer_config: Value = if config_path.is_file() {
        read_json(&config_path)?
    } else {
        let token = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
        json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": config.max_position_embeddings,
            "clean_up_tokenization_spaces": false,
            "bos_token": token(loaded.bos_id),
            "eos_token": token(loaded.eos_ids.first().copied()),
        })
    };
    if let Some(template) = &o.chat_template {
        let text =
            std::fs::read_to_string(template).with_context(|| format!("--chat-template {}", template.display()))?;
        tokenizer_config["chat_template"] = Value::String(text.clone());
        if temp.join("chat_template.jinja").is_file() {
            // transformers 5 prefers the separate file: keep the two the same.
            std::fs::write(temp.join("chat_template.jinja"), text)?;
        }
    }
    write_json(&config_path, &tokenizer_config)
}

/// `model.safetensors`, or shards of at most `max_bytes` each (a tensor
/// larger than that gets a shard of its own) with their index.
fn write_weights(dir: &Path, weights: &[(String, Tensor)], dtype: Kind, max_bytes: u64) -> anyhow::Result<()> {
    let converted: Vec<(String, Tensor)> =
        weights.iter().map(|(n, t)| (n.clone(), t.detach().to_kind(dtype).contiguous())).collect();
    let bytes = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as u64;
    let total: u64 = converted.iter().map(|(_, t)| bytes(t)).sum();
    if total <= max_bytes {
        return write_safetensors(&dir.join("model.safetensors"), &converted);
    }
    let mut shards: Vec<Vec<(String, Tensor)>> = vec![Vec::new()];
    let mut size = 0u64;
    for (name, t) in converted {
        let b = bytes(&t);
        if size > 0 && size + b > max_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += b;
        shards.last_mut().expect("one shard at least").push((name, t));
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        for (name, _) in shard {
            weight_map.insert(name.clone(), Value::String(file.clone()));
        }
        write_safetensors(&dir.join(&file), shard)?;
    }
    write_json(
        &dir.join("model.safetensors.index.json"),
        &json!({ "metadata": { "total_size": total }, "weight_map": weight_map }),
    )
}
