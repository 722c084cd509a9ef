//! Decoder-only transformers, one file per family.
//!
//! Both families name their weights as Hugging Face does
//! (`transformer.h.0.attn.c_attn.weight`, `model.layers.0.self_attn.q_proj.weight`)
//! and store them in its layouts, so a checkpoint's `model.safetensors`
//! loads into `GPT2LMHeadModel` or `LlamaForCausalLM` as it is.
//!
//! A model is split into embedding, layers and head ([`CausalLm`]) so that
//! the training step can recompute layers one at a time (activation
//! checkpointing) and generation can keep a key/value cache per layer.

pub mod gpt2;
pub mod llama;
pub mod lora;

use tch::{nn, Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};

/// Keys and values of the positions seen so far, per layer:
/// `[batch, kv_heads, positions, head_dim]`.
#[derive(Default)]
pub struct KvCache {
    pub layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(layers: usize) -> KvCache {
        KvCache { layers: (0..layers).map(|_| None).collect() }
    }

    /// Positions already cached.
    pub fn len(&self) -> i64 {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.size()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Several examples packed into one row (supervised fine-tuning): each
/// token's position within its example, and which example it belongs to.
/// Attention stays inside an example, so a packed row computes what its
/// examples would one by one.
pub struct Packing {
    /// `[B, T]` int64: positions restart at 0 with each example.
    pub positions: Tensor,
    /// `[B, 1, T, T]` bool: query `q` may attend key `k` (same example, `k <= q`).
    allowed: Tensor,
}

impl Packing {
    /// `segments` `[B, T]` numbers the examples of each row (padding is one
    /// more segment of its own).
    pub fn new(positions: Tensor, segments: &Tensor) -> Packing {
        let t = segments.size()[1];
        let same = segments.unsqueeze(2).eq_tensor(&segments.unsqueeze(1));
        let causal = Tensor::ones([t, t], (Kind::Bool, segments.device())).tril(0);
        Packing { positions, allowed: same.logical_and(&causal).unsqueeze(1) }
    }

    /// The mask with a sliding window: keys fewer than `window` positions back.
    fn windowed(&self, window: usize) -> Tensor {
        let p = &self.positions;
        let distance = p.unsqueeze(2) - p.unsqueeze(1);
        self.allowed.logical_and(&distance.lt(window as i64).unsqueeze(1))
    }
}

/// Where a call's tokens sit.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// One sequence per row, its first token at this position (a cache's length).
    From(i64),
    /// Packed examples.
    Packed(&'a Packing),
}

pub trait CausalLm {
    /// Token (and, for GPT-2, position) embeddings: `[B, T]` ids → `[B, T, d]`.
    fn embed(&self, ids: &Tensor, place: Place) -> Tensor;

    fn num_layers(&self) -> usize;

    /// Layer `i`; with a cache, appends this call's keys and values to it.
    fn layer(&self, i: usize, x: &Tensor, place: Place, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Tensor;

    /// Final norm and output projection: `[B, T, d]` → `[B, T, vocab]` logits.
    fn head(&self, x: &Tensor) -> Tensor;

    /// Folds every LoRA adapter into the weight it adapts (and zeroes the
    /// adapter), as PEFT's `merge_and_unload`.
    fn merge_lora(&self);

    fn forward(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Tensor {
        match cache {
            None => self.forward_at(ids, Place::From(0)),
            Some(cache) => {
                let place = Place::From(cache.len());
                let mut x = self.embed(ids, place);
                for (i, slot) in cache.layers.iter_mut().enumerate() {
                    x = self.layer(i, &x, place, Some(slot));
                }
                self.head(&x)
            }
        }
    }

    /// Logits without a cache, for tokens at `place`.
    fn forward_at(&self, ids: &Tensor, place: Place) -> Tensor {
        let mut x = self.embed(ids, place);
        for i in 0..self.num_layers() {
            x = self.layer(i, &x, place, None);
        }
        self.head(&x)
    }
}

/// Builds the configured model's weights in `vs`, initialised from the
/// current torch seed.
pub fn build(vs: &nn::VarStore, config: &ModelConfig) -> Box<dyn CausalLm> {
    build_with(vs, config, None)
}

/// [`build`], with LoRA adapters on the projections `lora` names.
pub fn build_with(vs: &nn::VarStore, config: &ModelConfig, lora: Option<&lora::LoraSpec>) -> Box<dyn CausalLm> {
    match config.architecture {
        Architecture::Gpt2 => Box::new(gpt2::Gpt2::new(vs.root(), config, lora)),
        Architecture::Llama => Box::new(llama::Llama::new(vs.root(), config, lora)),
    }
}

/// The projection names LoRA can adapt in `architecture`.
pub fn projections(architecture: Architecture) -> &'static [&'static str] {
    match architecture {
        Architecture::Gpt2 => &gpt2::PROJECTIONS,
        Architecture::Llama => &llama::PROJECTIONS,
    }
}

/// Parameters that count towards the 6N of the FLOP estimate: everything
/// but position embeddings, which are looked up, not multiplied.
pub fn flop_parameters(vs: &nn::VarStore) -> i64 {
    vs.variables().iter().filter(|(name, _)| !name.ends_with("wpe.weight")).map(|(_, t)| t.numel() as i64).sum()
}

/// Normal initialisation with GPT-2's and LLaMA's residual scaling: the
/// projections that write into the residual stream get `std / sqrt(2 L)`,
/// so the stream's variance does not grow with depth.
pub(crate) fn normal(std: f64) -> nn::Init {
    nn::Init::Randn { mean: 0.0, stdev: std }
}

pub(crate) fn residual_std(config: &ModelConfig) -> f64 {
    config.initializer_range / (2.0 * config.num_layers as f64).sqrt()
}

/// Causal scaled-dot-product attention over `[B, heads, T, head_dim]`, with
/// grouped-query heads when `k` and `v` have fewer heads than `q`, queries
/// placed after any cached keys (or packed examples kept apart), and an
/// optional sliding window.
pub(crate) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, window: Option<usize>, place: Place) -> Tensor {
    if q.size()[1] != k.size()[1] && q.device() == Device::Cpu {
        // libtorch's CPU kernel with enable_gqa is slower than repeating
        // each key/value head for its queries first (Hugging Face's repeat_kv).
        let groups = q.size()[1] / k.size()[1];
        return attend(q, &repeat_kv(k, groups), &repeat_kv(v, groups), window, place);
    }
    let gqa = q.size()[1] != k.size()[1];
    if let Place::Packed(packing) = place {
        let mask = match window {
            None => packing.allowed.shallow_clone(),
            Some(w) => packing.windowed(w),
        };
        return Tensor::scaled_dot_product_attention(q, k, v, Some(mask), 0.0, false, None, gqa);
    }
    let (tq, tk) = (q.size()[2], k.size()[2]);
    let offset = tk - tq;
    // The fused kernels' is_causal aligns the mask top-left, which is right
    // only when queries and keys start together.
    if window.is_none() && offset == 0 {
        return Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, true, None, gqa);
    }
    if window.is_none() && tq == 1 {
        return Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, false, None, gqa);
    }
    let device = q.device();
    let query_pos = (Tensor::arange(tq, (Kind::Int64, device)) + offset).unsqueeze(1);
    let key_pos = Tensor::arange(tk, (Kind::Int64, device)).unsqueeze(0);
    let mut mask = key_pos.le_tensor(&query_pos);
    if let Some(w) = window {
        mask = mask.logical_and(&(&query_pos - &key_pos).lt(w as i64));
    }
    Tensor::scaled_dot_product_attention(q, k, v, Some(mask), 0.0, false, None, gqa)
}

/// `[B, kv, T, d]` → `[B, kv × groups, T, d]`, each head repeated `groups` times in place.
fn repeat_kv(x: &Tensor, groups: i64) -> Tensor {
    let (b, kv, t, d) = x.size4().expect("[B, heads, T, head_dim]");
    x.unsqueeze(2).expand([b, kv, groups, t, d], false).reshape([b, kv * groups, t, d])
}

/// Appends this call's keys and values to a layer's cache and returns all of them.
pub(crate) fn cached(k: Tensor, v: Tensor, cache: Option<&mut Option<(Tensor, Tensor)>>) -> (Tensor, Tensor) {
    match cache {
        None => (k, v),
        Some(slot) => {
            let (k, v) = match slot.take() {
                None => (k, v),
                Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
            };
            *slot = Some((k.shallow_clone(), v.shallow_clone()));
            (k, v)
        }
    }
}

/// Mean next-token cross-entropy, computed in fp32 whatever the logits' dtype.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    let vocab = logits.size()[2];
    logits.to_kind(Kind::Float).reshape([-1, vocab]).cross_entropy_for_logits(&targets.reshape([-1]))
}

/// The target of a position the loss skips (prompt tokens, padding, the
/// last token of an example), as PyTorch's and Hugging Face's -100.
pub const IGNORE: i64 = -100;

/// Summed next-token cross-entropy over the targets that are not [`IGNORE`], in fp32.
pub fn cross_entropy_sum(logits: &Tensor, targets: &Tensor) -> Tensor {
    let vocab = logits.size()[2];
    logits.to_kind(Kind::Float).reshape([-1, vocab]).cross_entropy_loss::<Tensor>(
        &targets.reshape([-1]),
        None,
        tch::Reduction::Sum,
        IGNORE,
        0.0,
    )
}

/// A device that `training.device` (or `--device`) names but this machine lacks.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0:?} is not auto, cpu, cuda or cuda:N")]
    Unknown(String),
    #[error("cuda:{asked} asked for, but this machine has {count} CUDA devices")]
    Missing { asked: usize, count: usize },
}

pub fn device_of(spec: &str) -> Result<Device, DeviceError> {
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => cuda(n),
            None => Err(DeviceError::Unknown(other.to_owned())),
        },
    }
}

fn cuda(asked: usize) -> Result<Device, DeviceError> {
    let count = tch::Cuda::device_count() as usize;
    if asked < count {
        Ok(Device::Cuda(asked))
    } else {
        Err(DeviceError::Missing { asked, count })
    }
}
