//! Pretrained models on disk: a curate checkpoint or a Hugging Face model
//! folder, accepted alike wherever a model is loaded (`[model] init_from`,
//! `curate generate`, `curate eval`, `curate export`).
//!
//! Both are folders with a Hugging Face config.json and safetensors
//! weights; a checkpoint also has `model.json`, curate's own config, which
//! wins when present because it says exactly what was trained (the
//! initialisation scale, for one, which config.json may round).

pub mod adapter;
pub mod export;
pub mod hf_config;
pub mod weights;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tch::{nn, Device};

use crate::checkpoint;
use crate::config::{LoraConfig, ModelConfig};
use crate::model::lora::LoraSpec;
use crate::model::{self, CausalLm};

/// The folder to load for `path`: a model folder itself, or a training
/// run's output folder, for its latest checkpoint.
pub fn resolve(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("config.json").is_file() || adapter::is_adapter(path) {
        return Ok(path.to_owned());
    }
    match checkpoint::latest(path)? {
        Some(latest) => Ok(latest),
        None if path.is_dir() => bail!(
            "{}: neither a model folder (no config.json) nor a training run's output (no checkpoints/latest)",
            path.display()
        ),
        None => bail!("{}: no such folder", path.display()),
    }
}

/// A model folder's config and special tokens, without its weights.
pub fn describe(dir: &Path) -> anyhow::Result<hf_config::Imported> {
    let ours = dir.join("model.json");
    if ours.is_file() {
        let mut model: ModelConfig = checkpoint::read_json(&ours)?;
        model.init_from = None;
        let (bos_id, eos_ids) = hf_config::special_ids(dir)?;
        return Ok(hf_config::Imported { model, bos_id, eos_ids });
    }
    Ok(hf_config::read(dir)?)
}

/// A model with its weights.
pub struct Loaded {
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub model: Box<dyn CausalLm>,
    pub bos_id: Option<u32>,
    pub eos_ids: Vec<u32>,
    pub vs: nn::VarStore,
    /// The LoRA adapter on the model, when `dir` is an adapter folder.
    pub lora: Option<Lora>,
}

/// An adapter loaded onto its base model.
pub struct Lora {
    pub spec: LoraSpec,
    pub config: LoraConfig,
    /// The base model's folder.
    pub base: PathBuf,
}

/// Whether `dir` holds a whole model's weights (not only an adapter's).
fn has_weights(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
}

/// Loads the model of `path` (see [`resolve`]) onto `device`: a model
/// folder, or an adapter folder (PEFT's, or a LoRA run's checkpoint) on
/// the base model its adapter_config.json names.
pub fn load(path: &Path, device: Device) -> anyhow::Result<Loaded> {
    let dir = resolve(path)?;
    if adapter::is_adapter(&dir) && !has_weights(&dir) {
        return load_adapter(dir, device);
    }
    let hf_config::Imported { model: config, bos_id, eos_ids } = describe(&dir)?;
    let vs = nn::VarStore::new(device);
    let model = model::build(&vs, &config);
    weights::load_into(&variables(&vs), &dir)?;
    Ok(Loaded { dir, config, model, bos_id, eos_ids, vs, lora: None })
}

fn load_adapter(dir: PathBuf, device: Device) -> anyhow::Result<Loaded> {
    let adapter::AdapterConfig { lora, base } = adapter::read_config(&dir)?;
    let hf_config::Imported { model: config, bos_id, eos_ids } =
        describe(&base).with_context(|| format!("the base model of {}", dir.display()))?;
    let spec =
        lora.spec(config.architecture).map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(adapter::CONFIG).display()))?;
    let vs = nn::VarStore::new(device);
    let model = model::build_with(&vs, &config, Some(&spec));
    let (adapters, frozen): (Vec<_>, Vec<_>) =
        variables(&vs).into_iter().partition(|(name, _)| adapter::is_adapter_weight(name));
    weights::load_into(&frozen, &base)?;
    load_adapter_weights(&adapters, &dir)?;
    Ok(Loaded { dir, config, model, bos_id, eos_ids, vs, lora: Some(Lora { spec, config: lora, base }) })
}

/// Copies an adapter folder's weights into `targets`, which must be exactly
/// its tensors.
pub fn load_adapter_weights(targets: &[(String, tch::Tensor)], dir: &Path) -> anyhow::Result<()> {
    let file = dir.join(adapter::WEIGHTS);
    let found = adapter::read_weights(dir)?;
    if let Some(extra) = found.keys().find(|k| !targets.iter().any(|(n, _)| n == *k)) {
        bail!("{}: holds `{extra}`, which its adapter_config.json does not target", file.display());
    }
    checkpoint::copy_into(targets, &found, &file)
}

/// A var store's variables sorted by name.
pub fn variables(vs: &nn::VarStore) -> Vec<(String, tch::Tensor)> {
    let mut w: Vec<_> = vs.variables().into_iter().collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}
