//! Checkpoints: everything a run needs to continue as if it had never
//! stopped, in files other tools read.
//!
//! ```text
//! OUTPUT/checkpoints/step-00000100/
//!     model.safetensors      weights, Hugging Face names, {"format": "pt"} metadata
//!                            (under LoRA instead: adapter_config.json and adapter_model.safetensors,
//!                            a PEFT adapter of the base model)
//!     config.json            Hugging Face config: the folder loads with from_pretrained
//!     model.json             curate's model config (what `curate generate` builds)
//!     optimizer.safetensors  AdamW moments: exp_avg.NAME, exp_avg_sq.NAME
//!     trainer_state.json     step, optimizer step, loss scale, tokens seen, data fingerprint
//! OUTPUT/checkpoints/latest  the name of the newest complete checkpoint
//! ```
//!
//! A checkpoint is written into a hidden temporary folder and renamed into
//! place, then `latest` is replaced the same way, so a kill at any moment
//! leaves the previous checkpoint intact and `latest` pointing at it.
//!
//! There is no RNG state to save: training draws no random numbers (no
//! dropout), and the data order is a function of the seed and the step.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::ModelConfig;
use crate::precision::LossScaler;
use crate::pretrained::hf_config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps completed (the next step to run).
    pub step: u64,
    /// Optimizer updates applied (steps minus skipped steps).
    pub optimizer_step: i64,
    pub skipped_steps: u64,
    pub tokens_seen: u64,
    pub loss_scaler: Option<LossScaler>,
    /// What must not change across a resume for the data order to continue.
    pub data: DataFingerprint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub seq_len: usize,
    pub seed: u64,
    pub windows: u64,
    /// Sequences per optimizer step over all ranks. How they split into
    /// ranks, micro-batches and accumulation may change across a resume:
    /// a step reads the same windows either way.
    pub global_batch: usize,
}

pub fn checkpoints_dir(output: &Path) -> PathBuf {
    output.join("checkpoints")
}

/// The newest complete checkpoint under `output`, if any.
pub fn latest(output: &Path) -> anyhow::Result<Option<PathBuf>> {
    let dir = checkpoints_dir(output);
    let pointer = dir.join("latest");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let path = dir.join(name.trim());
            anyhow::ensure!(
                path.join("trainer_state.json").is_file(),
                "{}: names {}, which is not a complete checkpoint",
                pointer.display(),
                path.display()
            );
            Ok(Some(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", pointer.display())),
    }
}

pub struct Contents<'a> {
    pub model_config: &'a ModelConfig,
    pub weights: Vec<(String, Tensor)>,
    pub optimizer: Vec<(String, Tensor)>,
    pub state: &'a TrainerState,
    pub bos_id: Option<u32>,
    pub eos_ids: Vec<u32>,
    /// Under LoRA, `weights` are the adapters: written as a PEFT adapter of
    /// the base model instead of `model.safetensors`.
    pub lora: Option<LoraContents<'a>>,
}

pub struct LoraContents<'a> {
    pub spec: &'a crate::model::lora::LoraSpec,
    pub config: &'a crate::config::LoraConfig,
    pub architecture: crate::config::Architecture,
    pub base: &'a Path,
}

/// The folder of the checkpoint after `step` steps.
pub fn step_dir(output: &Path, step: u64) -> PathBuf {
    checkpoints_dir(output).join(format!("step-{step:08}"))
}

/// Writes checkpoint `step-NNNNNNNN` and points `latest` at it.
pub fn save(output: &Path, c: &Contents) -> anyhow::Result<PathBuf> {
    let dir = checkpoints_dir(output);
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let name = format!("step-{:08}", c.state.step);
    let temp = dir.join(format!(".{name}.partial"));
    let done = dir.join(&name);
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir(&temp)?;
    match &c.lora {
        None => write_safetensors(&temp.join("model.safetensors"), &c.weights)?,
        Some(l) => crate::pretrained::adapter::write(&temp, l.spec, l.config, l.architecture, l.base, &c.weights)?,
    }
    write_safetensors(&temp.join("optimizer.safetensors"), &c.optimizer)?;
    write_json(&temp.join("config.json"), &hf_config::write(c.model_config, c.bos_id, &c.eos_ids, "float32"))?;
    write_json(&temp.join("model.json"), c.model_config)?;
    write_json(&temp.join("trainer_state.json"), c.state)?;
    if done.exists() {
        // A rerun of a step that was checkpointed before (after a resume
        // from an older checkpoint): the new one replaces it.
        std::fs::remove_dir_all(&done)?;
    }
    std::fs::rename(&temp, &done)?;
    let pointer_temp = dir.join(".latest.partial");
    std::fs::write(&pointer_temp, &name)?;
    std::fs::rename(&pointer_temp, dir.join("latest"))?;
    Ok(done)
}

/// Pretty JSON, written to a temporary name and renamed into place.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let temp = path.with_extension("json.partial");
    std::fs::write(&temp, text).map_err(|e| anyhow::anyhow!("{}: {e}", temp.display()))?;
    std::fs::rename(&temp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn dtype_name(kind: Kind) -> anyhow::Result<&'static str> {
    Ok(match kind {
        Kind::Float => "F32",
        Kind::Double => "F64",
        Kind::BFloat16 => "BF16",
        Kind::Half => "F16",
        Kind::Int64 => "I64",
        Kind::Int => "I32",
        other => anyhow::bail!("no safetensors dtype for {other:?}"),
    })
}

/// Writes tensors (sorted by name) as safetensors with `{"format": "pt"}`
/// metadata, which `transformers` needs to accept the file as PyTorch's.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0usize;
    let mut data = Vec::with_capacity(sorted.len());
    for (name, tensor) in sorted {
        let t = tensor.detach().to_device(Device::Cpu).contiguous();
        let bytes = t.numel() * t.kind().elt_size_in_bytes();
        let mut buf = vec![0u8; bytes];
        t.f_copy_data_u8(&mut buf, t.numel())?;
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype_name(t.kind())?, "shape": t.size(), "data_offsets": [offset, offset + bytes] }),
        );
        offset += bytes;
        data.push(buf);
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header))?;
    // Padding to 8 bytes keeps the data aligned for memory-mapped readers.
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    file.write_all(&(header.len() as u64).to_le_bytes())?;
    file.write_all(&header)?;
    for buf in data {
        file.write_all(&buf)?;
    }
    file.into_inner().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?.sync_all()?;
    Ok(())
}

/// Reads a safetensors file into a name → tensor map (on the CPU).
pub fn read_safetensors(path: &Path) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let tensors = Tensor::read_safetensors(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(tensors.into_iter().collect())
}

/// Copies `source` tensors into `targets` by name; every target must be
/// present with the same shape.
pub fn copy_into(targets: &[(String, Tensor)], source: &BTreeMap<String, Tensor>, file: &Path) -> anyhow::Result<()> {
    tch::no_grad(|| {
        for (name, target) in targets {
            let Some(src) = source.get(name) else {
                anyhow::bail!("{}: no tensor `{name}`", file.display());
            };
            anyhow::ensure!(
                src.size() == target.size(),
                "{}: `{name}` has shape {:?}, the model needs {:?}",
                file.display(),
                src.size(),
                target.size()
            );
            let mut t = target.shallow_clone();
            t.f_copy_(src)?;
        }
        Ok(())
    })
}
