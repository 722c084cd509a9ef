//! LoRA: a low-rank update beside a frozen projection, as PEFT computes it.
//!
//! `y = x Wᵀ + dropout(x) Aᵀ Bᵀ · scaling` with `A: [rank, in]`
//! (Kaiming-uniform, as PEFT's default) and `B: [out, rank]` (zeros, so a
//! new adapter changes nothing), `scaling = alpha / rank` (or
//! `alpha / √rank` with rsLoRA). The weights are named as PEFT names them
//! (`...q_proj.lora_A.weight`), under the projection they adapt.

use std::cell::Cell;

use tch::{nn, Tensor};

thread_local! {
    /// Whether adapters apply their dropout: only inside [`training`].
    static TRAINING: Cell<bool> = const { Cell::new(false) };
    /// Whether adapters are left out: inside [`without_adapters`].
    static DISABLED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the base model alone (DPO's reference under LoRA).
pub fn without_adapters<T>(f: impl FnOnce() -> T) -> T {
    let before = DISABLED.with(|d| d.replace(true));
    let out = f();
    DISABLED.with(|d| d.set(before));
    out
}

/// Runs `f` with adapter dropout on (a training step's forward pass);
/// evaluation, generation and export never drop.
pub fn training<T>(f: impl FnOnce() -> T) -> T {
    let before = TRAINING.with(|t| t.replace(true));
    let out = f();
    TRAINING.with(|t| t.set(before));
    out
}

/// What an adapter is given: its rank, scaling, dropout, and the
/// projections it adapts (PEFT's `target_modules`, resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub rank: usize,
    pub scaling: f64,
    pub dropout: f64,
    /// Projection names: `q_proj`, `c_attn`, ...
    pub targets: Vec<String>,
}

impl LoraSpec {
    /// Whether the projection named `name` gets an adapter.
    pub fn adapts(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }
}

pub struct Adapter {
    a: Tensor,
    b: Tensor,
    scaling: f64,
    dropout: f64,
}

impl Adapter {
    /// An adapter for the projection at `p`, from `inputs` to `outputs` features.
    pub fn new(p: &nn::Path, inputs: usize, outputs: usize, spec: &LoraSpec) -> Adapter {
        // PEFT's kaiming_uniform_(a = √5): bound = 1 / √fan_in.
        let bound = 1.0 / (inputs as f64).sqrt();
        let a = (p / "lora_A").var(
            "weight",
            &[spec.rank as i64, inputs as i64],
            nn::Init::Uniform { lo: -bound, up: bound },
        );
        let b = (p / "lora_B").var("weight", &[outputs as i64, spec.rank as i64], nn::Init::Const(0.0));
        Adapter { a, b, scaling: spec.scaling, dropout: spec.dropout }
    }

    /// `y` (the frozen projection's output) plus the update for input `x`.
    pub fn add(&self, x: &Tensor, y: Tensor) -> Tensor {
        if DISABLED.with(Cell::get) {
            return y;
        }
        let drop = self.dropout > 0.0 && TRAINING.with(Cell::get);
        let x = if drop { x.dropout(self.dropout, true) } else { x.shallow_clone() };
        y + x.linear(&self.a, None::<Tensor>).linear(&self.b, None::<Tensor>) * self.scaling
    }

    /// `B A · scaling`: the change to a `[out, in]` weight when merged.
    pub fn delta(&self) -> Tensor {
        self.b.matmul(&self.a) * self.scaling
    }

    /// After a merge: `B = 0`, so the model computes the merged weights once.
    pub fn zero(&self) {
        tch::no_grad(|| {
            let _ = self.b.shallow_clone().zero_();
        });
    }
}

/// `y` plus the adapter's update when there is one.
pub fn adapted(adapter: &Option<Adapter>, x: &Tensor, y: Tensor) -> Tensor {
    match adapter {
        Some(a) => a.add(x, y),
        None => y,
    }
}
