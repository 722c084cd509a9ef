//! AdamW with decoupled weight decay, the learning-rate schedule and global
//! gradient-norm clipping.
//!
//! The update is PyTorch's fused AdamW kernel (`torch.optim.AdamW(fused=True)`,
//! CPU and CUDA), reached through the C++ shim since tch does not bind it.
//! The state lives here, not in libtorch, so that it can be checkpointed
//! exactly: tch binds neither optimizer state saving nor loading.

use tch::{Kind, Tensor};

use crate::config::TrainingConfig;

/// libtorch refused the fused AdamW update; its message.
#[derive(Debug, thiserror::Error)]
#[error("AdamW update: {0}")]
pub struct AdamWError(pub String);

extern "C" {
    fn curate_fused_adamw(
        params: *const *mut torch_sys::C_tensor,
        grads: *const *mut torch_sys::C_tensor,
        exp_avgs: *const *mut torch_sys::C_tensor,
        exp_avg_sqs: *const *mut torch_sys::C_tensor,
        step: *mut torch_sys::C_tensor,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        error: *mut std::ffi::c_char,
        error_len: i32,
    ) -> i32;
    fn curate_reset_grad(tensor: *mut torch_sys::C_tensor);
}

pub struct Param {
    /// The Hugging Face name, as in the checkpoint.
    pub name: String,
    pub tensor: Tensor,
    pub decay: bool,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

pub struct AdamW {
    pub params: Vec<Param>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates applied so far (skipped steps do not count).
    pub step: i64,
}

/// No weight decay on norms, biases and embeddings: they are vectors or
/// lookup tables, and shrinking them towards zero only hurts.
pub fn decays(name: &str, tensor: &Tensor) -> bool {
    tensor.dim() >= 2
        && !name.ends_with("wte.weight")
        && !name.ends_with("wpe.weight")
        && !name.contains("embed_tokens")
}

impl AdamW {
    /// `named`: the trainable parameters, sorted by name so that the order
    /// (and with it every reduction over them) is the same in every run.
    pub fn new(mut named: Vec<(String, Tensor)>, t: &TrainingConfig) -> AdamW {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, tensor)| Param {
                decay: decays(&name, &tensor),
                exp_avg: tensor.zeros_like().detach(),
                exp_avg_sq: tensor.zeros_like().detach(),
                name,
                tensor,
            })
            .collect();
        AdamW { params, beta1: t.beta1, beta2: t.beta2, eps: t.adam_eps, weight_decay: t.weight_decay, step: 0 }
    }

    /// Drops every gradient (`grad = None`), as `zero_grad(set_to_none=True)`.
    pub fn zero_grad(&mut self) {
        for p in &self.params {
            reset_grad(&p.tensor);
        }
    }

    /// One update at learning rate `lr` from the gradients in `.grad`.
    pub fn step(&mut self, lr: f64) -> Result<(), AdamWError> {
        self.step += 1;
        for decay in [true, false] {
            let mut group: Vec<(Tensor, Tensor, Tensor, Tensor)> = self
                .params
                .iter()
                .filter(|p| p.decay == decay)
                .filter_map(|p| {
                    let grad = p.tensor.grad();
                    grad.defined().then(|| {
                        (p.tensor.shallow_clone(), grad, p.exp_avg.shallow_clone(), p.exp_avg_sq.shallow_clone())
                    })
                })
                .collect();
            let weight_decay = if decay { self.weight_decay } else { 0.0 };
            fused_adamw(&mut group, self.step, lr, self.beta1, self.beta2, weight_decay, self.eps)?;
        }
        Ok(())
    }
}

/// One fused AdamW update of `(param, grad, exp_avg, exp_avg_sq)` tuples
/// (whole tensors or views of them), `step` being the update's number.
#[allow(unsafe_code)]
pub fn fused_adamw(
    group: &mut [(Tensor, Tensor, Tensor, Tensor)],
    step: i64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    eps: f64,
) -> Result<(), AdamWError> {
    let Some(first) = group.first() else { return Ok(()) };
    let mut step = Tensor::from(step as f32).to_device(first.0.device());
    let mut lists: [Vec<*mut torch_sys::C_tensor>; 4] = Default::default();
    for (p, g, m, v) in group.iter_mut() {
        lists[0].push(p.as_mut_ptr());
        lists[1].push(g.as_mut_ptr());
        lists[2].push(m.as_mut_ptr());
        lists[3].push(v.as_mut_ptr());
    }
    let mut error = [0 as std::ffi::c_char; 512];
    let failed = tch::no_grad(|| {
        // SAFETY: four lists of `group.len()` live tensor pointers (kept
        // alive by `group`), a live step tensor, and an error buffer of the
        // length given.
        unsafe {
            curate_fused_adamw(
                lists[0].as_ptr(),
                lists[1].as_ptr(),
                lists[2].as_ptr(),
                lists[3].as_ptr(),
                step.as_mut_ptr(),
                group.len() as i32,
                lr,
                beta1,
                beta2,
                weight_decay,
                eps,
                error.as_mut_ptr(),
                error.len() as i32,
            )
        }
    });
    if failed != 0 {
        // SAFETY: the shim wrote a NUL-terminated message.
        let message = unsafe { std::ffi::CStr::from_ptr(error.as_ptr()) };
        return Err(AdamWError(message.to_string_lossy().into_owned()));
    }
    Ok(())
}

/// `tensor.grad = None`: the next backward pass stores its gradient
/// instead of adding it to zeros, which saves a pass over every gradient.
#[allow(unsafe_code)]
pub fn reset_grad(tensor: &Tensor) {
    let mut handle = tensor.shallow_clone();
    // SAFETY: a tch tensor pointer is a `torch::Tensor*`; resetting its
    // gradient (shared by every handle of the tensor) leaves the tensor alone.
    unsafe { curate_reset_grad(handle.as_mut_ptr()) };
}

/// Linear warmup from lr/warmup to lr, then cosine decay to the floor at
/// `max_steps`.
pub fn learning_rate(t: &TrainingConfig, step: u64) -> f64 {
    if step < t.warmup_steps {
        return t.learning_rate * (step + 1) as f64 / t.warmup_steps as f64;
    }
    let span = t.max_steps.saturating_sub(t.warmup_steps).max(1);
    let progress = ((step - t.warmup_steps) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    t.min_lr() + (t.learning_rate - t.min_lr()) * cosine
}

/// The global L2 norm of all gradients, accumulated in f64 so that the
/// same gradients give the same norm however they are split (into
/// tensors here, into ranks' shards under ZeRO); inf or NaN when any
/// gradient is.
pub fn grad_norm(params: &[Param]) -> f64 {
    let grads: Vec<Tensor> = params.iter().map(|p| p.tensor.grad()).collect();
    squared_norm(&grads).sqrt()
}

/// The sum of the squares of every element of `tensors` (undefined ones
/// count as zeros), in f64.
pub fn squared_norm(tensors: &[Tensor]) -> f64 {
    let norms: Vec<Tensor> = tensors
        .iter()
        .filter(|g| g.defined() && g.numel() > 0)
        .map(|g| g.norm_scalaropt_dtype(2.0, Kind::Double).square().to_device(tch::Device::Cpu))
        .collect();
    if norms.is_empty() {
        return 0.0;
    }
    Tensor::stack(&norms, 0).sum(Kind::Double).double_value(&[])
}

/// Scales every gradient by `factor` (clipping, loss-scale removal, averaging).
pub fn scale_grads(params: &[Param], factor: f64) {
    tch::no_grad(|| {
        for p in params {
            let mut g = p.tensor.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(factor);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    fn training(extra: &str) -> TrainingConfig {
        let text = format!(
            "[model]\narchitecture = \"gpt2\"\n[data]\npath = \"d\"\n[training]\nmax_steps = 100\n\
             learning_rate = 1.0\nmin_learning_rate = 0.1\n{extra}"
        );
        TrainConfig::parse(&text).unwrap().training
    }

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let t = training("warmup_steps = 10");
        assert!((learning_rate(&t, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&t, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&t, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&t, 55) - 0.55).abs() < 1e-12);
        assert!((learning_rate(&t, 100) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&t, 1000) - 0.1).abs() < 1e-12);
        let mut last = f64::INFINITY;
        for s in 10..=100 {
            let lr = learning_rate(&t, s);
            assert!(lr <= last);
            last = lr;
        }
    }

    #[test]
    fn weight_decay_skips_vectors_and_embeddings() {
        let m = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu));
        let v = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu));
        assert!(decays("model.layers.0.self_attn.q_proj.weight", &m));
        assert!(decays("lm_head.weight", &m));
        assert!(!decays("model.embed_tokens.weight", &m));
        assert!(!decays("transformer.wte.weight", &m));
        assert!(!decays("transformer.wpe.weight", &m));
        assert!(!decays("transformer.h.0.ln_1.weight", &v));
        assert!(!decays("transformer.h.0.attn.c_attn.bias", &v));
    }

    /// Two steps against torch.optim.AdamW's update written out in f64.
    #[test]
    fn matches_adamw_by_hand() {
        let t = training("weight_decay = 0.5\nbeta1 = 0.8\nbeta2 = 0.9\nadam_eps = 0.001");
        let w = Tensor::from_slice(&[1.0f64, -2.0, 3.0, 0.5]).view([2, 2]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone())], &t);
        let grads = [[0.1, -0.2, 0.3, 1.0], [0.5, 0.0, -1.0, 2.0]];
        let (mut p, mut m, mut v) = ([1.0, -2.0, 3.0, 0.5], [0.0; 4], [0.0; 4]);
        for (step, g) in grads.iter().enumerate() {
            opt.zero_grad();
            (&w * Tensor::from_slice(g).view([2, 2])).sum(Kind::Double).backward();
            let lr = 0.01 * (step + 1) as f64;
            opt.step(lr).unwrap();
            let n = (step + 1) as i32;
            for i in 0..4 {
                p[i] *= 1.0 - lr * 0.5;
                m[i] = 0.8 * m[i] + 0.2 * g[i];
                v[i] = 0.9 * v[i] + 0.1 * g[i] * g[i];
                let denom = (v[i] / (1.0 - 0.9f64.powi(n))).sqrt() + 0.001;
                p[i] -= lr / (1.0 - 0.8f64.powi(n)) * m[i] / denom;
            }
        }
        let got = Vec::<f64>::try_from(w.detach().view([-1])).unwrap();
        for i in 0..4 {
            assert!((got[i] - p[i]).abs() < 1e-12, "{got:?} vs {p:?}");
        }
    }
}
