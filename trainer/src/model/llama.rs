//! LLaMA: RMSNorm, SwiGLU, rotary position embeddings in Hugging Face's
//! half-split convention, grouped-query attention and, as Mistral has it,
//! optional sliding-window attention. Weights are `[out, in]`, no biases.

use tch::{nn, Kind, Tensor};

use super::{attend, cached, normal, residual_std, CausalLm};
use crate::config::ModelConfig;

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
    o_proj: Tensor,
    post_attention_norm: RmsNorm,
    gate_proj: Tensor,
    up_proj: Tensor,
    down_proj: Tensor,
}

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
    pub fn new(root: nn::Path, c: &ModelConfig) -> Llama {
        let (d, std) = (c.hidden_size as i64, c.initializer_range);
        let head_dim = c.head_dim() as i64;
        let (heads, kv_heads, inter) = (c.num_heads as i64, c.kv_heads() as i64, c.intermediate() as i64);
        let m = &root / "model";
        let weight = |p: nn::Path, out: i64, inp: i64, std: f64| p.var("weight", &[out, inp], normal(std));
        let embed_tokens = (&m / "embed_tokens").var("weight", &[c.vocab() as i64, d], normal(std));
        let layers = (0..c.num_layers)
            .map(|i| {
                let l = &m / "layers" / i;
                let a = &l / "self_attn";
                let f = &l / "mlp";
                Layer {
                    input_norm: RmsNorm::new(&l / "input_layernorm", d as usize, c.norm_eps),
                    q_proj: weight(&a / "q_proj", heads * head_dim, d, std),
                    k_proj: weight(&a / "k_proj", kv_heads * head_dim, d, std),
                    v_proj: weight(&a / "v_proj", kv_heads * head_dim, d, std),
                    o_proj: weight(&a / "o_proj", d, heads * head_dim, residual_std(c)),
                    post_attention_norm: RmsNorm::new(&l / "post_attention_layernorm", d as usize, c.norm_eps),
                    gate_proj: weight(&f / "gate_proj", inter, d, std),
                    up_proj: weight(&f / "up_proj", inter, d, std),
                    down_proj: weight(&f / "down_proj", d, inter, residual_std(c)),
                }
            })
            .collect();
        let norm = RmsNorm::new(&m / "norm", d as usize, c.norm_eps);
        let lm_head =
            if c.tied() { embed_tokens.shallow_clone() } else { weight(&root / "lm_head", c.vocab() as i64, d, std) };
        let (cos, sin) = rotary_tables(c, root.device());
        Llama { embed_tokens, layers, norm, lm_head, heads, kv_heads, head_dim, window: c.sliding_window, cos, sin }
    }
}

/// cos and sin of position × inverse frequency, each frequency repeated in
/// both halves of the head (`cat(freqs, freqs)`), computed as Hugging Face does.
fn rotary_tables(c: &ModelConfig, device: tch::Device) -> (Tensor, Tensor) {
    let dim = c.head_dim() as i64;
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / dim as f64;
    let inv_freq = Tensor::pow_scalar(c.rope_theta, &exponents).reciprocal();
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
    fn embed(&self, ids: &Tensor, _start: i64) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn layer(&self, i: usize, x: &Tensor, start: i64, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Tensor {
        let l = &self.layers[i];
        let (batch, t, d) = x.size3().expect("[B, T, d]");
        let h = l.input_norm.forward(x);
        let heads = |w: &Tensor, n: i64| h.linear(w, None::<Tensor>).view([batch, t, n, self.head_dim]).transpose(1, 2);
        let (q, k, v) =
            (heads(&l.q_proj, self.heads), heads(&l.k_proj, self.kv_heads), heads(&l.v_proj, self.kv_heads));
        let cos = self.cos.narrow(0, start, t).to_kind(q.kind());
        let sin = self.sin.narrow(0, start, t).to_kind(q.kind());
        let rope = |x: &Tensor| x * &cos + rotate_half(x) * &sin;
        let (k, v) = cached(rope(&k), v, cache);
        let y = attend(&rope(&q), &k, &v, self.window).transpose(1, 2).reshape([batch, t, d]);
        let x = x + y.linear(&l.o_proj, None::<Tensor>);
        let h = l.post_attention_norm.forward(&x);
        let gate = h.linear(&l.gate_proj, None::<Tensor>).silu();
        let up = h.linear(&l.up_proj, None::<Tensor>);
        &x + (gate * up).linear(&l.down_proj, None::<Tensor>)
    }

    fn head(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x).linear(&self.lm_head, None::<Tensor>)
    }
}
