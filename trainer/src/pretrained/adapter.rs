//! PEFT's LoRA adapter folders, both ways:
//!
//! ```text
//! DIR/adapter_config.json        peft_type LORA, r, lora_alpha, lora_dropout, target_modules,
//!                                base_model_name_or_path, fan_in_fan_out (GPT-2's Conv1D)
//! DIR/adapter_model.safetensors  base_model.model.<module>.lora_A.weight / .lora_B.weight
//! ```
//!
//! `PeftModel.from_pretrained(base, DIR)` loads what [`write`] writes, and
//! curate reads what PEFT saves. What curate's adapters cannot express
//! (DoRA, per-module ranks, trained biases, extra saved modules, a layer
//! subset) is refused by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tch::Tensor;

use crate::checkpoint::{read_json, read_safetensors, write_json, write_safetensors};
use crate::config::{Architecture, LoraConfig};
use crate::model::lora::LoraSpec;

pub const CONFIG: &str = "adapter_config.json";
pub const WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT's prefix before a module's own name.
const PREFIX: &str = "base_model.model.";

/// An adapter folder's settings and the model it adapts.
pub struct AdapterConfig {
    pub lora: LoraConfig,
    /// `base_model_name_or_path`: the folder of the model it was trained on.
    pub base: PathBuf,
}

pub fn is_adapter(dir: &Path) -> bool {
    dir.join(CONFIG).is_file()
}

pub fn read_config(dir: &Path) -> anyhow::Result<AdapterConfig> {
    let path = dir.join(CONFIG);
    let c: Value = read_json(&path)?;
    let refuse = |key: &str, why: &str| -> anyhow::Result<AdapterConfig> {
        bail!("{}: {key}: {} {why}", path.display(), c[key])
    };
    if c["peft_type"] != "LORA" {
        return refuse("peft_type", "is not LORA");
    }
    if c["use_dora"] == true {
        return refuse("use_dora", ": DoRA is not supported");
    }
    if !c["bias"].is_null() && c["bias"] != "none" {
        return refuse("bias", ": trained biases are not supported");
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if c[key].as_object().is_some_and(|m| !m.is_empty()) {
            return refuse(key, ": per-module ranks and alphas are not supported");
        }
    }
    if c["lora_bias"] == true {
        return refuse("lora_bias", ": trained biases are not supported");
    }
    for key in [
        "modules_to_save",
        "layers_to_transform",
        "exclude_modules",
        "target_parameters",
        "trainable_token_indices",
        "layer_replication",
    ] {
        if !c[key].is_null() && c[key].as_array().is_none_or(|a| !a.is_empty()) {
            return refuse(key, "is not supported");
        }
    }
    let targets = match &c["target_modules"] {
        Value::Array(t) => t.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Value::String(s) if s == "all-linear" => vec![s.clone()],
        _ => return refuse("target_modules", "is not a list of module names"),
    };
    let number = |key: &str| c[key].as_f64().with_context(|| format!("{}: {key} is missing", path.display()));
    let lora = LoraConfig {
        init_from: None,
        rank: number("r")? as usize,
        alpha: number("lora_alpha")?,
        dropout: c["lora_dropout"].as_f64().unwrap_or(0.0),
        target_modules: targets,
        use_rslora: c["use_rslora"] == true,
        base_bf16: false,
    };
    let base = c["base_model_name_or_path"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("{}: base_model_name_or_path is missing", path.display()))?;
    Ok(AdapterConfig { lora, base })
}

/// The adapter's weights by curate's names (PEFT's prefix and adapter name
/// taken off).
pub fn read_weights(dir: &Path) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let path = dir.join(WEIGHTS);
    let mut out = BTreeMap::new();
    for (name, tensor) in read_safetensors(&path)? {
        let Some(inner) = name.strip_prefix(PREFIX) else {
            bail!("{}: `{name}` does not start with {PREFIX}", path.display());
        };
        out.insert(inner.replace(".default.", "."), tensor);
    }
    Ok(out)
}

/// Writes `weights` (curate's names, adapters only) as a PEFT adapter of
/// the model in `base`.
pub fn write(
    dir: &Path,
    spec: &LoraSpec,
    lora: &LoraConfig,
    architecture: Architecture,
    base: &Path,
    weights: &[(String, Tensor)],
) -> anyhow::Result<()> {
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": spec.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": spec.targets,
        "use_rslora": lora.use_rslora,
        "use_dora": false,
        "bias": "none",
        // GPT-2's Conv1D stores its weight as [in, out].
        "fan_in_fan_out": architecture == Architecture::Gpt2,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    write_json(&dir.join(CONFIG), &config)?;
    let named: Vec<(String, Tensor)> =
        weights.iter().map(|(n, t)| (format!("{PREFIX}{n}"), t.shallow_clone())).collect();
    write_safetensors(&dir.join(WEIGHTS), &named)
}

/// Whether a variable is an adapter's.
pub fn is_adapter_weight(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}
