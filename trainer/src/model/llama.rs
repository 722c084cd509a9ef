//! LLaMA: RMSNorm, SwiGLU, rotary position embeddings in Hugging Face's
//! half-split convention, grouped-query attention and, as Mistral has it,
//! optional sliding-window attention. Weights are `[out, in]`, without
//! biases but on q, k and v as Qwen2 has them.

use tch::{nn, Kind, Tensor};

use super::lora::{adapted, Adapter, LoraSpec};
use super::{attend, cached, normal, residual_std, CausalLm, Place};
use crate::config::{ModelConfig, RopeScaling};

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, dim: usize, eps: f64) -> RmsNorm {
        RmsNorm { weight: p.var("weight", &[dim as i64], nn::Init::Const(1.0)), eps }
    }

    /// In fp32 whatever the input's dtype, as Hugging Face computes it.
    fn forward(&self, x: &Tensor) -> Tensor {
        let x32 = x.to_kind(Kind::Float);
        let variance = x32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = &x32 * (variance + self.eps).rsqrt();
        &self.weight * normed.to_kind(x.kind())
    }
}

struct Layer {
    input_norm: RmsNorm,
    q_proj: Tensor,
    k_proj: Tensor,
    v_proj: Tensor,
    /// q, k and v biases (Qwen2).
    qkv_bias: Option<[Tensor; 3]>,
    o_proj: Tensor,
    post_attention_norm: RmsNorm,
    gate_proj: Tensor,
    up_proj: Tensor,
    down_proj: Tensor,
    /// LoRA adapters of the projections, in [`PROJECTIONS`] order.
    lora: Vec<Option<Adapter>>,
}

/// The projections of a layer, as PEFT's `target_modules` name them.
pub const PROJECTIONS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

pub struct Llama {
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Tensor,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    window: Option<usize>,
    /// `[max_positions, head_dim]` each, fp32, not trained.
    cos: Tensor,
    sin: Tensor,
}

impl Llama {
    pub fn new(root: nn::Path, c: &ModelConfig, lora: Option<&LoraSpec>) -> Llama {
        let (d, std) = (c.hidden_size as i64, c.initializer_range);
        let head_dim = c.head_dim() as i64;
        let (heads, kv_heads, inter) = (c.num_heads as i64, c.kv_heads() as i64, c.intermediate() as i64);
        let m = &root / "model";
        let weight = |p: &nn::Path, out: i64, inp: i64, std: f64| p.var("weight", &[out, inp], normal(std));
        let bias = |p: &nn::Path, out: i64| p.var("bias", &[out], nn::Init::Const(0.0));
        let embed_tokens = (&m / "embed_tokens").var("weight", &[c.vocab() as i64, d], normal(std));
        let layers = (0..c.num_layers)
            .map(|i| {
                let l = &m / "layers" / i;
                let a = &l / "self_attn";
                let f = &l / "mlp";
                let (q, k, v) = (&a / "q_proj", &a / "k_proj", &a / "v_proj");
                // (path, inputs, outputs) of each projection, in PROJECTIONS order.
                let shapes = [
                    (&q, d, heads * head_dim),
                    (&k, d, kv_heads * head_dim),
                    (&v, d, kv_heads * head_dim),
                    (&(&a / "o_proj"), heads * head_dim, d),
                    (&(&f / "gate_proj"), d, inter),
                    (&(&f / "up_proj"), d, inter),
                    (&(&f / "down_proj"), inter, d),
                ];
                let adapters = shapes
                    .iter()
                    .zip(PROJECTIONS)
                    .map(|((p, inputs, outputs), name)| {
                        lora.filter(|s| s.adapts(name)).map(|s| Adapter::new(p, *inputs as usize, *outputs as usize, s))
                    })
                    .collect();
                Layer {
                    input_norm: RmsNorm::new(&l / "input_layernorm", d as usize, c.norm_eps),
                    q_proj: weight(&q, heads * head_dim, d, std),
                    k_proj: weight(&k, kv_heads * head_dim, d, std),
                    v_proj: weight(&v, kv_heads * head_dim, d, std),
                    qkv_bias: c.qkv_bias.then(|| {
                        [bias(&q, heads * head_dim), bias(&k, kv_heads * head_dim), bias(&v, kv_heads * head_dim)]
                    }),
                    o_proj: weight(&(&a / "o_proj"), d, heads * head_dim, residual_std(c)),
                    post_attention_norm: RmsNorm::new(&l / "post_attention_layernorm", d as usize, c.norm_eps),
                    gate_proj: weight(&(&f / "gate_proj"), inter, d, std),
                    up_proj: weight(&(&f / "up_proj"), inter, d, std),
                    down_proj: weight(&(&f / "down_proj"), d, inter, residual_std(c)),
                    lora: adapters,
                }
            })
            .collect();
        let norm = RmsNorm::new(&m / "norm", d as usize, c.norm_eps);
        let lm_head = if c.tied() {
            embed_tokens.shallow_clone()
        } else {
            weight(&(&root / "lm_head"), c.vocab() as i64, d, std)
        };
        let (cos, sin) = rotary_tables(c, root.device());
        Llama { embed_tokens, layers, norm, lm_head, heads, kv_heads, head_dim, window: c.sliding_window, cos, sin }
    }
}

/// cos and sin of position × inverse frequency, each frequency repeated in
/// both halves of the head (`cat(freqs, freqs)`), computed as Hugging Face does.
fn rotary_tables(c: &ModelConfig, device: tch::Device) -> (Tensor, Tensor) {
    let dim = c.head_dim() as i64;
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / dim as f64;
    let mut inv_freq = Tensor::pow_scalar(c.rope_theta, &exponents).reciprocal();
    match c.rope_scaling {
        None => {}
        Some(RopeScaling::Linear { factor }) => inv_freq /= factor,
        Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings }) => {
            // transformers' _compute_llama3_parameters, step for step.
            let old = original_max_position_embeddings as f64;
            let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
            let wavelen = inv_freq.full_like(2.0 * std::f64::consts::PI) / &inv_freq;
            let scaled = inv_freq.where_self(&wavelen.le(low_wavelen), &(&inv_freq / factor));
            let smooth = (wavelen.full_like(old) / &wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            let smoothed = (smooth.ones_like() - &smooth) * &scaled / factor + &smooth * &scaled;
            let medium = wavelen.ge(high_wavelen).logical_and(&wavelen.le(low_wavelen));
            inv_freq = smoothed.where_self(&medium, &scaled);
        }
    }
    let positions = Tensor::arange(c.max_position_embeddings as i64, (Kind::Int64, device)).to_kind(Kind::Float);
    let freqs = positions.outer(&inv_freq);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (emb.cos(), emb.sin())
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    Tensor::cat(&[-x.narrow(3, half, half), x.narrow(3, 0, half)], 3)
}

impl CausalLm for Llama {
    fn embed(&self, ids: &Tensor, _place: Place) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn layer(&self, i: usize, x: &Tensor, place: Place, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Tensor {
        let l = &self.layers[i];
        let (batch, t, _) = x.size3().expect("[B, T, d]");
        let h = l.input_norm.forward(x);
        let bias = |i: usize| l.qkv_bias.as_ref().map(|b| &b[i]);
        let heads = |i: usize, w: &Tensor, n: i64| {
            adapted(&l.lora[i], &h, h.linear(w, bias(i))).view([batch, t, n, self.head_dim]).transpose(1, 2)
        };
        let (q, k, v) =
            (heads(0, &l.q_proj, self.heads), heads(1, &l.k_proj, self.kv_heads), heads(2, &l.v_proj, self.kv_heads));
        let (cos, sin) = match place {
            Place::From(start) => (self.cos.narrow(0, start, t), self.sin.narrow(0, start, t)),
            Place::Packed(p) => {
                // [B, 1, T, head_dim]: each token's own position.
                let at = |table: &Tensor| {
                    table.index_select(0, &p.positions.reshape([-1])).view([batch, 1, t, self.head_dim])
                };
                (at(&self.cos), at(&self.sin))
            }
        };
        let (cos, sin) = (cos.to_kind(q.kind()), sin.to_kind(q.kind()));
        let rope = |x: &Tensor| x * &cos + rotate_half(x) * &sin;
        let (k, v) = cached(rope(&k), v, cache);
        let y = attend(&rope(&q), &k, &v, self.window, place).transpose(1, 2).reshape([
            batch,
            t,
            self.heads * self.head_dim,
        ]);
        let x = x + adapted(&l.lora[3], &y, y.linear(&l.o_proj, None::<Tensor>));
        let h = l.post_attention_norm.forward(&x);
        let gate = adapted(&l.lora[4], &h, h.linear(&l.gate_proj, None::<Tensor>)).silu();
        let up = adapted(&l.lora[5], &h, h.linear(&l.up_proj, None::<Tensor>));
        let m = gate * up;
        &x + adapted(&l.lora[6], &m, m.linear(&l.down_proj, None::<Tensor>))
    }

    fn merge_lora(&self) {
        tch::no_grad(|| {
            for l in &self.layers {
                let weights = [&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj];
                for (w, adapter) in weights.into_iter().zip(&l.lora) {
                    if let Some(a) = adapter {
                        let _ = w.shallow_clone().g_add_(&a.delta());
                        a.zero();
                    }
                }
            }
        });
    }

    fn head(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x).linear(&self.lm_head, None::<Tensor>)
    }
}
