//! Sampling from a model (a checkpoint or a Hugging Face folder): temperature, top-k and top-p (nucleus),
//! with a key/value cache so each new token costs one position's work.

use anyhow::Context;
use tch::{Device, Kind, Tensor};

use crate::model::KvCache;
use crate::pretrained::Loaded;

pub struct Sampling {
    /// 0 picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    pub top_p: f64,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// Continues `prompt` (token ids) until `max_new_tokens`, the end-of-text
/// token or the model's last position. Without `use_cache` every step reruns
/// the whole sequence (slow; tests compare the two).
pub fn generate(
    loaded: &Loaded,
    prompt: &[i64],
    s: &Sampling,
    use_cache: bool,
    device: Device,
) -> anyhow::Result<Vec<i64>> {
    anyhow::ensure!(!prompt.is_empty(), "the prompt encodes to no tokens");
    let max_positions = loaded.config.max_position_embeddings;
    anyhow::ensure!(
        prompt.len() < max_positions,
        "the prompt has {} tokens; the model sees at most {max_positions}",
        prompt.len()
    );
    let mut rng = SplitMix(s.seed);
    let mut tokens = prompt.to_vec();
    let mut cache = KvCache::new(loaded.config.num_layers);
    let mut pending: Vec<i64> = prompt.to_vec();
    tch::no_grad(|| {
        for _ in 0..s.max_new_tokens {
            if tokens.len() >= max_positions {
                break;
            }
            let logits = if use_cache {
                let ids = Tensor::from_slice(&pending).view([1, -1]).to_device(device);
                loaded.model.forward(&ids, Some(&mut cache))
            } else {
                let ids = Tensor::from_slice(&tokens).view([1, -1]).to_device(device);
                loaded.model.forward(&ids, None)
            };
            let last = logits.select(1, -1).squeeze_dim(0).to_kind(Kind::Float).to_device(Device::Cpu);
            let next = pick(&Vec::<f32>::try_from(&last).context("logits to a vector")?, s, &mut rng);
            tokens.push(next);
            pending = vec![next];
            if loaded.eos_ids.iter().any(|&e| i64::from(e) == next) {
                break;
            }
        }
        Ok(tokens[prompt.len()..].to_vec())
    })
}

/// Chooses the next token from one position's logits.
fn pick(logits: &[f32], s: &Sampling, rng: &mut SplitMix) -> i64 {
    if s.temperature <= 0.0 {
        // First maximum, as torch.argmax picks it.
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best as i64;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let top = f64::from(logits[order[0]]);
    let mut probs: Vec<f64> = order.iter().map(|&i| ((f64::from(logits[i]) - top) / s.temperature).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut cumulative = 0.0;
        let keep = probs
            .iter()
            .position(|p| {
                cumulative += p;
                cumulative >= s.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        order.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.next_f64();
    for (p, &i) in probs.iter().zip(&order) {
        if u < *p {
            return i as i64;
        }
        u -= p;
    }
    *order.last().expect("at least one token") as i64
}

struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::model;
    use tch::nn;

    fn tiny(arch: &str, extra: &str) -> Loaded {
        let text = format!(
            "[model]\narchitecture = \"{arch}\"\nvocab_size = 50\nhidden_size = 32\nnum_layers = 2\nnum_heads = 4\n\
             max_position_embeddings = 64\n{extra}\n[data]\npath = \"d\"\nseq_len = 16\n[training]\nmax_steps = 1\n"
        );
        let config = TrainConfig::parse(&text).unwrap().model;
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        // Large weights make the logits decisive, so greedy picks are not
        // near-ties that rounding differences could flip.
        let model = model::build(&vs, &config);
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.dim() == 2 {
                    let _ = t.g_mul_scalar_(20.0);
                }
            }
        });
        Loaded { dir: "tiny".into(), config, model, bos_id: None, eos_ids: Vec::new(), vs, lora: None }
    }

    #[test]
    fn the_cache_gives_the_same_tokens_as_recomputing() {
        let greedy = Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_new_tokens: 30, seed: 1 };
        for (arch, extra) in [("gpt2", ""), ("llama", "num_kv_heads = 2"), ("llama", "sliding_window = 5")] {
            let m = tiny(arch, extra);
            let with = generate(&m, &[1, 2, 3, 4, 5, 6, 7], &greedy, true, Device::Cpu).unwrap();
            let without = generate(&m, &[1, 2, 3, 4, 5, 6, 7], &greedy, false, Device::Cpu).unwrap();
            assert_eq!(with.len(), 30);
            assert_eq!(with, without, "{arch} {extra}");
        }
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_nucleus() {
        let logits = [0.0f32, 3.0, 2.9, -1.0];
        let mut rng = SplitMix(9);
        let s = |temperature, top_k, top_p| Sampling { temperature, top_k, top_p, max_new_tokens: 1, seed: 0 };
        for _ in 0..50 {
            assert_eq!(pick(&logits, &s(1.0, 1, 1.0), &mut rng), 1);
            // Tokens 1 and 2 hold about 0.51 and 0.46 of the mass.
            let t = pick(&logits, &s(1.0, 0, 0.9), &mut rng);
            assert!(t == 1 || t == 2, "{t}");
        }
        let picks: Vec<i64> = (0..400).map(|_| pick(&logits, &s(1.0, 0, 1.0), &mut rng)).collect();
        assert!(picks.contains(&0) && picks.contains(&3), "sampling at temperature 1 reaches the tail");
        assert_eq!(pick(&logits, &s(0.0, 0, 1.0), &mut rng), 1);
    }
}
