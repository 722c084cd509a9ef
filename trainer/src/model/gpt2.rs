//! GPT-2: learned positions, pre-LayerNorm blocks, GELU (tanh), tied
//! embeddings. Weights are Hugging Face's `Conv1D` layout, `[in, out]`.

use tch::{nn, Kind, Tensor};

use super::lora::{adapted, Adapter, LoraSpec};
use super::{attend, cached, normal, residual_std, CausalLm, Place};
use crate::config::ModelConfig;

struct Linear {
    weight: Tensor,
    bias: Tensor,
    lora: Option<Adapter>,
}

impl Linear {
    /// A `Conv1D` named `name` (`c_attn`, `c_proj`, `c_fc`: PEFT's target names).
    fn new(p: nn::Path, name: &str, inputs: usize, outputs: usize, std: f64, lora: Option<&LoraSpec>) -> Linear {
        let p = &p / name;
        Linear {
            weight: p.var("weight", &[inputs as i64, outputs as i64], normal(std)),
            bias: p.var("bias", &[outputs as i64], nn::Init::Const(0.0)),
            lora: lora.filter(|s| s.adapts(name)).map(|s| Adapter::new(&p, inputs, outputs, s)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        adapted(&self.lora, x, x.matmul(&self.weight) + &self.bias)
    }

    /// Folds the adapter in: a Conv1D weight is `[in, out]`, the transpose of `B A`.
    fn merge(&self) {
        if let Some(a) = &self.lora {
            tch::no_grad(|| {
                let _ = self.weight.shallow_clone().g_add_(&a.delta().tr());
            });
            a.zero();
        }
    }
}

/// The projections of a block, as PEFT's `target_modules` name them.
pub const PROJECTIONS: [&str; 3] = ["c_attn", "c_proj", "c_fc"];

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(p: nn::Path, dim: usize, eps: f64) -> LayerNorm {
        LayerNorm {
            weight: p.var("weight", &[dim as i64], nn::Init::Const(1.0)),
            bias: p.var("bias", &[dim as i64], nn::Init::Const(0.0)),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let dim = self.weight.size()[0];
        x.layer_norm([dim], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

pub struct Gpt2 {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// `[vocab, d]`; the token embedding itself when tied.
    lm_head: Tensor,
    heads: i64,
}

impl Gpt2 {
    pub fn new(root: nn::Path, c: &ModelConfig, lora: Option<&LoraSpec>) -> Gpt2 {
        let (d, std) = (c.hidden_size, c.initializer_range);
        let t = &root / "transformer";
        let wte = (&t / "wte").var("weight", &[c.vocab() as i64, d as i64], normal(std));
        let wpe = (&t / "wpe").var("weight", &[c.max_position_embeddings as i64, d as i64], normal(std));
        let blocks = (0..c.num_layers)
            .map(|i| {
                let b = &t / "h" / i;
                Block {
                    ln_1: LayerNorm::new(&b / "ln_1", d, c.norm_eps),
                    c_attn: Linear::new(&b / "attn", "c_attn", d, 3 * d, std, lora),
                    attn_proj: Linear::new(&b / "attn", "c_proj", d, d, residual_std(c), lora),
                    ln_2: LayerNorm::new(&b / "ln_2", d, c.norm_eps),
                    c_fc: Linear::new(&b / "mlp", "c_fc", d, c.intermediate(), std, lora),
                    mlp_proj: Linear::new(&b / "mlp", "c_proj", c.intermediate(), d, residual_std(c), lora),
                }
            })
            .collect();
        let ln_f = LayerNorm::new(&t / "ln_f", d, c.norm_eps);
        let lm_head = if c.tied() {
            wte.shallow_clone()
        } else {
            (&root / "lm_head").var("weight", &[c.vocab() as i64, d as i64], normal(std))
        };
        Gpt2 { wte, wpe, blocks, ln_f, lm_head, heads: c.num_heads as i64 }
    }
}

impl CausalLm for Gpt2 {
    fn embed(&self, ids: &Tensor, place: Place) -> Tensor {
        let t = ids.size()[1];
        let positions = match place {
            Place::From(start) => Tensor::arange_start(start, start + t, (Kind::Int64, ids.device())),
            Place::Packed(p) => p.positions.shallow_clone(),
        };
        Tensor::embedding(&self.wte, ids, -1, false, false) + Tensor::embedding(&self.wpe, &positions, -1, false, false)
    }

    fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    fn layer(&self, i: usize, x: &Tensor, place: Place, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Tensor {
        let b = &self.blocks[i];
        let (batch, t, d) = x.size3().expect("[B, T, d]");
        let head_dim = d / self.heads;
        let qkv = b.c_attn.forward(&b.ln_1.forward(x));
        let split = |part: &Tensor| part.view([batch, t, self.heads, head_dim]).transpose(1, 2);
        let parts = qkv.split(d, 2);
        let (k, v) = cached(split(&parts[1]), split(&parts[2]), cache);
        let y = attend(&split(&parts[0]), &k, &v, None, place).transpose(1, 2).reshape([batch, t, d]);
        let x = x + b.attn_proj.forward(&y);
        let h = b.c_fc.forward(&b.ln_2.forward(&x)).gelu("tanh");
        &x + b.mlp_proj.forward(&h)
    }

    fn head(&self, x: &Tensor) -> Tensor {
        self.ln_f.forward(x).matmul(&self.lm_head.tr())
    }

    fn merge_lora(&self) {
        for b in &self.blocks {
            for l in [&b.c_attn, &b.attn_proj, &b.c_fc, &b.mlp_proj] {
                l.merge();
            }
        }
    }
}
