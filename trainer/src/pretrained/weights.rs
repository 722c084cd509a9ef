//! A model folder's weights: `model.safetensors`, or the shards that
//! `model.safetensors.index.json` names, in whatever dtype they were saved
//! (fp32, bf16, fp16; they are converted on copy into the model's fp32).
//!
//! Names are Hugging Face's. A few spellings of the same model are
//! accepted: GPT-2 as OpenAI's upload has it (no `transformer.` prefix),
//! the buffers older transformers saved (GPT-2's causal mask, LLaMA's
//! rotary `inv_freq`), and an `lm_head.weight` beside tied embeddings.
//! Any other tensor the model does not have is an error: a folder whose
//! config.json does not describe its weights must not load half of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure};
use tch::{Kind, Tensor};

use crate::checkpoint;

/// Every tensor of the folder by name, on the CPU, and the files they came from.
pub fn read(dir: &Path) -> anyhow::Result<(BTreeMap<String, Tensor>, Vec<PathBuf>)> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok((checkpoint::read_safetensors(&single)?, vec![single]));
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        bail!(
            "{}: no model.safetensors or model.safetensors.index.json (curate reads safetensors weights only)",
            dir.display()
        );
    }
    let value: serde_json::Value = checkpoint::read_json(&index)?;
    let Some(map) = value.get("weight_map").and_then(|m| m.as_object()) else {
        bail!("{}: no weight_map object", index.display());
    };
    let mut files: Vec<&str> = Vec::new();
    for (name, file) in map {
        match file.as_str() {
            Some(f) if !f.contains('/') && !f.contains('\\') && f != ".." => {
                if !files.contains(&f) {
                    files.push(f);
                }
            }
            _ => bail!("{}: weight_map.{name}: {file} is not a file name beside the index", index.display()),
        }
    }
    files.sort_unstable();
    let mut tensors = BTreeMap::new();
    let mut paths = Vec::new();
    for file in files {
        let path = dir.join(file);
        for (name, tensor) in checkpoint::read_safetensors(&path)? {
            match map.get(&name).and_then(|f| f.as_str()) {
                Some(f) if f == file => {}
                _ => bail!("{}: holds `{name}`, which the index does not place in this file", path.display()),
            }
            tensors.insert(name, tensor);
        }
        paths.push(path);
    }
    if let Some(missing) = map.keys().find(|name| !tensors.contains_key(*name)) {
        bail!("{}: names `{missing}`, which its file does not hold", index.display());
    }
    Ok((tensors, paths))
}

/// Copies a folder's weights into `targets` (the model's variables by
/// name): every target must be present with its shape, and every tensor of
/// the folder must be used, but for the known leftovers above.
pub fn load_into(targets: &[(String, Tensor)], dir: &Path) -> anyhow::Result<()> {
    let (mut tensors, files) = read(dir)?;
    let wanted: std::collections::BTreeSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    // OpenAI's GPT-2 upload names its weights without the module prefix.
    if wanted.iter().any(|n| n.starts_with("transformer.")) && !tensors.keys().any(|n| n.starts_with("transformer.")) {
        tensors = tensors.into_iter().map(|(n, t)| (format!("transformer.{n}"), t)).collect();
    }
    let leftover = |name: &str| {
        name.ends_with(".attn.bias") && name.starts_with("transformer.h.")
            || name.ends_with(".attn.masked_bias")
            || name.ends_with(".rotary_emb.inv_freq")
            || name == "lm_head.weight"
    };
    if let Some(extra) = tensors.keys().find(|n| !wanted.contains(n.as_str()) && !leftover(n)) {
        bail!(
            "{}: holds `{extra}`, which the model its config.json describes does not have",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    for (name, tensor) in &tensors {
        if wanted.contains(name.as_str()) {
            ensure!(
                matches!(tensor.kind(), Kind::Float | Kind::BFloat16 | Kind::Half | Kind::Double),
                "{}: `{name}` is {:?}, not a floating-point tensor",
                dir.display(),
                tensor.kind()
            );
        }
    }
    checkpoint::copy_into(targets, &tensors, dir)
}
