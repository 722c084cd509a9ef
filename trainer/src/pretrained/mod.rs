//! Pretrained models on disk: a curate checkpoint or a Hugging Face model
//! folder, accepted alike wherever a model is loaded (`[model] init_from`,
//! `curate generate`, `curate eval`, `curate export`).
//!
//! Both are folders with a Hugging Face config.json and safetensors
//! weights; a checkpoint also has `model.json`, curate's own config, which
//! wins when present because it says exactly what was trained (the
//! initialisation scale, for one, which config.json may round).

pub mod export;
pub mod hf_config;
pub mod weights;

use std::path::{Path, PathBuf};

use anyhow::bail;
use tch::{nn, Device};

use crate::checkpoint;
use crate::config::ModelConfig;
use crate::model::{self, CausalLm};

/// The folder to load for `path`: a model folder itself, or a training
/// run's output folder, for its latest checkpoint.
pub fn resolve(path: &Path) -> anyhow::Result<PathBuf> {
    if path.join("config.json").is_file() {
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
}

/// Loads the model of `path` (see [`resolve`]) onto `device`.
pub fn load(path: &Path, device: Device) -> anyhow::Result<Loaded> {
    let dir = resolve(path)?;
    let hf_config::Imported { model: config, bos_id, eos_ids } = describe(&dir)?;
    let vs = nn::VarStore::new(device);
    let model = model::build(&vs, &config);
    weights::load_into(&variables(&vs), &dir)?;
    Ok(Loaded { dir, config, model, bos_id, eos_ids, vs })
}

/// A var store's variables sorted by name.
pub fn variables(vs: &nn::VarStore) -> Vec<(String, tch::Tensor)> {
    let mut w: Vec<_> = vs.variables().into_iter().collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}
