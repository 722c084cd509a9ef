//! `train.toml`: the model, the data and the training loop, with the key
//! names Hugging Face and torchtitan users know. Every key has a default
//! except the data path and `max_steps`; unknown keys are errors that name
//! their TOML path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub training: TrainingConfig,
    #[serde(default)]
    pub distributed: DistributedConfig,
    /// Train LoRA adapters on a frozen model instead of the model itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Preference optimisation on shards of pairs, instead of next-token loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo: Option<crate::dpo::DpoConfig>,
}

/// `[lora]`: low-rank adapters, with PEFT's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// A PEFT adapter folder to start from: its adapter_config.json gives
    /// every other key of this table (which must then be left out), its
    /// weights the adapters' initial values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// PEFT's `r`.
    #[serde(default = "d_lora_rank")]
    pub rank: usize,
    /// PEFT's `lora_alpha`: the update is scaled by alpha / rank.
    #[serde(default = "d_lora_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    /// The projections adapted, as PEFT names them (q_proj, v_proj, ...,
    /// c_attn, c_proj, c_fc), or "all-linear"; by default PEFT's for the
    /// architecture: q_proj and v_proj (LLaMA), c_attn (GPT-2).
    #[serde(default)]
    pub target_modules: Vec<String>,
    /// rsLoRA: scale by alpha / √rank.
    #[serde(default)]
    pub use_rslora: bool,
    /// Hold the frozen base model in bfloat16 (half its memory); the
    /// adapters stay fp32. Needs `training.bf16`, whose autocast computes
    /// the products in bf16 anyway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base_bf16: bool,
}

fn d_lora_rank() -> usize {
    8
}
fn d_lora_alpha() -> f64 {
    8.0
}

impl LoraConfig {
    /// The adapter this table describes on `architecture`, or what is wrong
    /// with it, by key.
    pub fn spec(&self, architecture: Architecture) -> Result<crate::model::lora::LoraSpec, Invalid> {
        let fail = |key: &str, message: String| Err(Invalid { key: format!("lora.{key}"), message });
        if self.rank == 0 {
            return fail("rank", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail("dropout", format!("{} is not in [0, 1)", self.dropout));
        }
        let available = crate::model::projections(architecture);
        let targets: Vec<String> = match self.target_modules.as_slice() {
            [] if architecture == Architecture::Gpt2 => vec!["c_attn".into()],
            [] => vec!["q_proj".into(), "v_proj".into()],
            [all] if all == "all-linear" => available.iter().map(|s| s.to_string()).collect(),
            named => named.to_vec(),
        };
        if let Some(bad) = targets.iter().find(|t| !available.contains(&t.as_str())) {
            return fail("target_modules", format!("{bad:?} is not one of {}", available.join(", ")));
        }
        let scaling =
            if self.use_rslora { self.alpha / (self.rank as f64).sqrt() } else { self.alpha / self.rank as f64 };
        Ok(crate::model::lora::LoraSpec { rank: self.rank, scaling, dropout: self.dropout, targets })
    }
}

/// Data-parallel training, when the job runs on more than one rank.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedConfig {
    /// 0: every rank holds the whole optimizer state (DDP); 1: AdamW's
    /// moments are sharded across ranks (ZeRO-1); 2: the reduced gradients
    /// are sharded too (ZeRO-2).
    #[serde(default)]
    pub zero: u8,
    /// Gradients are sent in buckets of about this many MiB, each as soon
    /// as the backward pass has produced it (DDP's bucket_cap_mb).
    #[serde(default = "d_bucket_mb")]
    pub bucket_mb: f64,
    /// A collective, or joining the group, that takes longer than this
    /// fails the job (a dead or hung rank) instead of waiting forever.
    #[serde(default = "d_timeout_s")]
    pub timeout_s: f64,
}

impl Default for DistributedConfig {
    fn default() -> DistributedConfig {
        DistributedConfig { zero: 0, bucket_mb: d_bucket_mb(), timeout_s: d_timeout_s() }
    }
}

fn d_bucket_mb() -> f64 {
    25.0
}
fn d_timeout_s() -> f64 {
    600.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Learned positions, LayerNorm, GELU (tanh), tied embeddings.
    Gpt2,
    /// RMSNorm, SwiGLU, rotary embeddings, grouped-query attention.
    Llama,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A Hugging Face model folder (or a curate checkpoint) to start from:
    /// its config.json gives every other key of this table, which must then
    /// be left out, and its weights replace the random initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    pub architecture: Architecture,
    /// Defaults to the tokenizer's vocabulary size from the data's manifest.
    pub vocab_size: Option<usize>,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    #[serde(default = "d_heads")]
    pub num_heads: usize,
    /// LLaMA only; defaults to `num_heads` (no grouping).
    pub num_kv_heads: Option<usize>,
    /// Width of one attention head (LLaMA only); defaults to hidden_size /
    /// num_heads. Mistral-Nemo and others set it apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Biases on the query, key and value projections, as Qwen2 has them
    /// (LLaMA only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub qkv_bias: bool,
    /// Defaults to 4 × hidden for GPT-2, 8/3 × hidden rounded up to 256 for LLaMA.
    pub intermediate_size: Option<usize>,
    #[serde(default = "d_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_rope_theta")]
    pub rope_theta: f64,
    /// Rotary frequencies stretched for a longer context (LLaMA only), as
    /// Hugging Face's `rope_scaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "d_norm_eps")]
    pub norm_eps: f64,
    /// Defaults to true for GPT-2 and false for LLaMA.
    pub tie_embeddings: Option<bool>,
    /// Mistral's sliding-window attention (LLaMA only): a token sees itself
    /// and the `sliding_window - 1` tokens before it.
    pub sliding_window: Option<usize>,
    #[serde(default = "d_init_std")]
    pub initializer_range: f64,
}

/// Hugging Face's rotary scaling kinds that curate computes the same way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// LLaMA 3.1's: low frequencies divided by `factor`, high ones kept,
    /// the band between blended.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardFormat {
    Megatron,
    Parquet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The folder holding `manifest.json`, as `curate tokenize` writes it.
    pub path: PathBuf,
    /// Which of the manifest's formats to read; Megatron when present.
    pub format: Option<ShardFormat>,
    #[serde(default = "d_seq_len")]
    pub seq_len: usize,
    /// Seed of the window shuffle.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Chat data (shards with a loss mask): pack several examples into each
    /// sequence (best-fit decreasing), or give each its own, padded.
    #[serde(default = "d_true")]
    pub packing: bool,
    /// Chat data: an example longer than seq_len is "truncate"d or "drop"ped.
    #[serde(default)]
    pub overlong: crate::packing::Overlong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Stop with an error naming the step.
    Stop,
    /// Skip the optimizer step, count it, and go on.
    Skip,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub max_steps: u64,
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// The floor cosine decay ends at; defaults to learning_rate / 10.
    pub min_learning_rate: Option<f64>,
    #[serde(default)]
    pub warmup_steps: u64,
    /// Sequences per micro-batch (per data-parallel rank).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_one")]
    pub gradient_accumulation_steps: usize,
    /// Sequences per optimizer step over all ranks, as torchtitan's
    /// global_batch_size: accumulation becomes global_batch_size /
    /// (batch_size × ranks), so the same config (and a resume) runs on any
    /// number of ranks that divides it.
    pub global_batch_size: Option<usize>,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    #[serde(default = "d_adam_eps")]
    pub adam_eps: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off.
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// bf16 autocast with fp32 master weights (CPU and CUDA).
    #[serde(default)]
    pub bf16: bool,
    /// fp16 autocast with dynamic loss scaling.
    #[serde(default)]
    pub fp16: bool,
    /// Recompute each layer's activations in the backward pass.
    #[serde(default)]
    pub activation_checkpointing: bool,
    #[serde(default = "d_nan")]
    pub nan_policy: NanPolicy,
    /// Evaluate on the validation split every this many steps (0: never).
    #[serde(default)]
    pub eval_interval: u64,
    /// Validation batches per evaluation.
    #[serde(default = "d_eval_steps")]
    pub eval_steps: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_interval: u64,
    /// Seed of the weight initialisation.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    #[serde(default = "d_device")]
    pub device: String,
    /// Intra-op CPU threads; libtorch's default when unset.
    pub threads: Option<usize>,
    /// The device's peak TFLOP/s for MFU; guessed for known GPUs when unset.
    pub peak_tflops: Option<f64>,
    /// Where metrics and checkpoints go; `--output` overrides it.
    #[serde(default = "d_output")]
    pub output_dir: PathBuf,
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_max_pos() -> usize {
    1024
}
fn d_rope_theta() -> f64 {
    10000.0
}
fn d_norm_eps() -> f64 {
    1e-5
}
fn d_init_std() -> f64 {
    0.02
}
fn d_true() -> bool {
    true
}
fn d_seq_len() -> usize {
    1024
}
fn d_seed() -> u64 {
    1
}
fn d_lr() -> f64 {
    3e-4
}
fn d_batch() -> usize {
    8
}
fn d_one() -> usize {
    1
}
fn d_wd() -> f64 {
    0.1
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.95
}
fn d_adam_eps() -> f64 {
    1e-8
}
fn d_clip() -> f64 {
    1.0
}
fn d_nan() -> NanPolicy {
    NanPolicy::Stop
}
fn d_eval_steps() -> usize {
    10
}
fn d_device() -> String {
    "auto".into()
}
fn d_output() -> PathBuf {
    PathBuf::from("runs/train")
}

/// `[TABLE] init_from = "DIR"`: the table made from the folder's `file`
/// by `read`, or `None` without `init_from`. Every other key of the table
/// is refused by name: it comes from the folder.
fn pretrained_table(
    table: &toml::Table,
    name: &str,
    file: &str,
    read: impl FnOnce(&Path) -> anyhow::Result<toml::Value>,
) -> Result<Option<toml::Value>, Invalid> {
    let Some(toml::Value::Table(t)) = table.get(name) else { return Ok(None) };
    let Some(from) = t.get("init_from") else { return Ok(None) };
    let key = format!("{name}.init_from");
    let Some(dir) = from.as_str() else {
        return Err(Invalid { key, message: format!("{from} is not a folder path") });
    };
    if let Some(other) = t.keys().find(|k| *k != "init_from") {
        return Err(Invalid {
            key: format!("{name}.{other}"),
            message: format!("comes from init_from's {file} ({dir}); leave it out"),
        });
    }
    read(Path::new(dir)).map(Some).map_err(|e| Invalid { key, message: format!("{e:#}") })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Invalid { path: String, source: Invalid },
}

/// A `train.toml` that does not parse or holds a value that cannot work,
/// named by its key (`model.num_heads`; empty for the file as a whole).
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl TrainConfig {
    pub fn load(path: &Path) -> Result<TrainConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
        let config = TrainConfig::parse(&text).map_err(|source| ConfigError::Invalid { path: p.clone(), source })?;
        Ok(config)
    }

    /// Parses and checks everything that does not need the data.
    pub fn parse(text: &str) -> Result<TrainConfig, Invalid> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Invalid { key: String::new(), message: e.to_string() })?;
        let model = pretrained_table(&table, "model", "config.json", |dir| {
            let mut model = crate::pretrained::describe(dir)?.model;
            model.init_from = Some(dir.to_owned());
            Ok(toml::Value::try_from(&model)?)
        })?;
        let lora = pretrained_table(&table, "lora", "adapter_config.json", |dir| {
            let mut lora = crate::pretrained::adapter::read_config(dir)?.lora;
            lora.init_from = Some(dir.to_owned());
            Ok(toml::Value::try_from(&lora)?)
        })?;
        if model.is_none() && lora.is_none() {
            return TrainConfig::parse_plain(text);
        }
        for (name, value) in [("model", model), ("lora", lora)] {
            if let Some(value) = value {
                table.insert(name.into(), value);
            }
        }
        let text = toml::to_string(&table).map_err(|e| Invalid { key: String::new(), message: e.to_string() })?;
        TrainConfig::parse_plain(&text)
    }

    fn parse_plain(text: &str) -> Result<TrainConfig, Invalid> {
        let de = toml::Deserializer::parse(text).map_err(|e| Invalid { key: String::new(), message: e.to_string() })?;
        let config: TrainConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let message = e.into_inner().to_string().trim().to_owned();
            Invalid { key: if at == "." { String::new() } else { at }, message }
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Invalid> {
        let m = &self.model;
        let t = &self.training;
        let fail = |key: &str, message: String| Err(Invalid { key: key.to_owned(), message });
        if m.hidden_size == 0 || m.num_layers == 0 || m.num_heads == 0 {
            return fail("model", "hidden_size, num_layers and num_heads must be positive".into());
        }
        if m.head_dim.is_none() && !m.hidden_size.is_multiple_of(m.num_heads) {
            return fail("model.num_heads", format!("{} does not divide hidden_size {}", m.num_heads, m.hidden_size));
        }
        if m.architecture == Architecture::Gpt2 {
            for (set, key) in [
                (m.head_dim.is_some(), "model.head_dim"),
                (m.qkv_bias, "model.qkv_bias"),
                (m.rope_scaling.is_some(), "model.rope_scaling"),
            ] {
                if set {
                    return fail(key, "is a LLaMA option".into());
                }
            }
        }
        if m.head_dim == Some(0) {
            return fail("model.head_dim", "must be at least 1".into());
        }
        let kv = m.kv_heads();
        if m.architecture == Architecture::Gpt2 && kv != m.num_heads {
            return fail("model.num_kv_heads", "grouped-query attention is a LLaMA option".into());
        }
        if kv == 0 || !m.num_heads.is_multiple_of(kv) {
            return fail("model.num_kv_heads", format!("{kv} does not divide num_heads {}", m.num_heads));
        }
        if m.architecture == Architecture::Llama && !m.head_dim().is_multiple_of(2) {
            return fail("model", format!("rotary embeddings need an even head size, not {}", m.head_dim()));
        }
        if m.sliding_window.is_some() && m.architecture == Architecture::Gpt2 {
            return fail("model.sliding_window", "sliding-window attention is a LLaMA option".into());
        }
        if m.sliding_window == Some(0) {
            return fail("model.sliding_window", "must be at least 1".into());
        }
        if self.data.seq_len == 0 || self.data.seq_len > m.max_position_embeddings {
            return fail(
                "data.seq_len",
                format!(
                    "{} must be between 1 and max_position_embeddings ({})",
                    self.data.seq_len, m.max_position_embeddings
                ),
            );
        }
        if t.max_steps == 0 {
            return fail("training.max_steps", "must be at least 1".into());
        }
        if t.batch_size == 0 || t.gradient_accumulation_steps == 0 {
            return fail("training", "batch_size and gradient_accumulation_steps must be at least 1".into());
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            return fail("training.learning_rate", format!("{} is not a positive number", t.learning_rate));
        }
        if t.min_lr() > t.learning_rate || t.min_lr() < 0.0 {
            return fail("training.min_learning_rate", "must lie between 0 and learning_rate".into());
        }
        if t.bf16 && t.fp16 {
            return fail("training", "bf16 and fp16 are exclusive: pick one".into());
        }
        if t.global_batch_size.is_some() && t.gradient_accumulation_steps != 1 {
            return fail(
                "training.global_batch_size",
                "sets gradient_accumulation_steps itself: leave that one out".into(),
            );
        }
        if let Some(lora) = &self.lora {
            lora.spec(m.architecture)?;
            if m.init_from.is_none() {
                return fail("lora", "adapters train on a pretrained model: set model.init_from".into());
            }
            if lora.base_bf16 && !t.bf16 {
                return fail("lora.base_bf16", "needs training.bf16 = true (bf16 autocast)".into());
            }
            if lora.dropout > 0.0 && t.activation_checkpointing {
                return fail(
                    "lora.dropout",
                    "activation checkpointing would recompute layers with other dropout masks: use one or the other"
                        .into(),
                );
            }
        }
        if let Some(dpo) = &self.dpo {
            if !(dpo.beta > 0.0 && dpo.beta.is_finite()) {
                return fail("dpo.beta", format!("{} is not a positive number", dpo.beta));
            }
            if !(0.0..0.5).contains(&dpo.label_smoothing) {
                return fail("dpo.label_smoothing", format!("{} is not in [0, 0.5)", dpo.label_smoothing));
            }
        }
        let d = &self.distributed;
        if d.zero > 2 {
            return fail("distributed.zero", format!("{} is not 0, 1 or 2", d.zero));
        }
        if !(d.bucket_mb > 0.0 && d.bucket_mb.is_finite()) {
            return fail("distributed.bucket_mb", format!("{} is not a positive number", d.bucket_mb));
        }
        if !(d.timeout_s > 0.0 && d.timeout_s.is_finite()) {
            return fail("distributed.timeout_s", format!("{} is not a positive number", d.timeout_s));
        }
        Ok(())
    }
}

impl ModelConfig {
    pub fn kv_heads(&self) -> usize {
        self.num_kv_heads.unwrap_or(self.num_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_heads)
    }

    pub fn intermediate(&self) -> usize {
        self.intermediate_size.unwrap_or(match self.architecture {
            Architecture::Gpt2 => 4 * self.hidden_size,
            Architecture::Llama => (8 * self.hidden_size / 3).div_ceil(256) * 256,
        })
    }

    pub fn tied(&self) -> bool {
        self.tie_embeddings.unwrap_or(self.architecture == Architecture::Gpt2)
    }

    /// The vocabulary size, once the data has filled it in.
    pub fn vocab(&self) -> usize {
        self.vocab_size.expect("vocab_size is resolved from the manifest before a model is built")
    }
}

impl TrainingConfig {
    pub fn min_lr(&self) -> f64 {
        self.min_learning_rate.unwrap_or(self.learning_rate / 10.0)
    }

    /// Micro-batches per optimizer step on `world` ranks.
    pub fn accumulation(&self, world: usize) -> Result<usize, Invalid> {
        let Some(global) = self.global_batch_size else { return Ok(self.gradient_accumulation_steps) };
        let per_micro = self.batch_size * world;
        if global == 0 || !global.is_multiple_of(per_micro) {
            return Err(Invalid {
                key: "training.global_batch_size".into(),
                message: format!(
                    "{global} is not a positive multiple of batch_size {} × {world} ranks = {per_micro}",
                    self.batch_size
                ),
            });
        }
        Ok(global / per_micro)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\narchitecture = \"llama\"\nhidden_size = 64\nnum_heads = 4\n\
                        [data]\npath = \"d\"\nseq_len = 32\n[training]\nmax_steps = 3\n";

    #[test]
    fn defaults_follow_the_architecture() {
        let c = TrainConfig::parse(BASE).unwrap();
        assert_eq!(c.model.intermediate(), 256);
        assert!(!c.model.tied());
        assert_eq!(c.model.kv_heads(), 4);
        let gpt = TrainConfig::parse(&BASE.replace("llama", "gpt2")).unwrap();
        assert_eq!(gpt.model.intermediate(), 256);
        assert!(gpt.model.tied());
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: String| TrainConfig::parse(&text).unwrap_err().to_string();
        assert!(err(BASE.replace("num_heads = 4", "num_heads = 5")).starts_with("model.num_heads: 5 does not divide"));
        let unknown = err(BASE.replace("seq_len = 32", "seq_len = 32\nbogus = 1"));
        assert!(unknown.starts_with("data") && unknown.contains("bogus"), "{unknown}");
        assert!(err(BASE.replace("seq_len = 32", "seq_len = 4096")).starts_with("data.seq_len"));
        assert!(err(BASE.replace("max_steps = 3", "max_steps = 3\nbf16 = true\nfp16 = true")).contains("exclusive"));
        let kv = BASE.replace("num_heads = 4", "num_heads = 4\nnum_kv_heads = 3");
        assert!(err(kv).starts_with("model.num_kv_heads: 3 does not divide"));
        let lr = BASE.replace("max_steps = 3", "max_steps = 3\nlearning_rate = -1.0");
        assert!(err(lr).starts_with("training.learning_rate"));
    }
}
