//! One micro-batch's forward and backward pass, with or without activation
//! checkpointing, and the evaluation loss.

use tch::{Device, Kind, Tensor};

use crate::data::{DataError, Windows};
use crate::model::{cross_entropy, CausalLm};
use crate::precision::Precision;

/// Inputs and targets of a micro-batch: `[B, seq_len]` each, on `device`.
pub fn batch(windows: &Windows, indices: &[u64], device: Device) -> Result<(Tensor, Tensor), DataError> {
    let mut tokens = Vec::with_capacity(indices.len() * (windows.seq_len() + 1));
    for &i in indices {
        windows.read(i, &mut tokens)?;
    }
    let t = windows.seq_len() as i64;
    let all = Tensor::from_slice(&tokens).view([indices.len() as i64, t + 1]);
    Ok((all.narrow(1, 0, t).to_device(device), all.narrow(1, 1, t).to_device(device)))
}

/// Runs forward and backward, adding `loss × factor`'s gradients to the
/// weights' `.grad`. Returns the (unscaled) loss.
///
/// With `checkpointing`, the forward pass keeps only each layer's input;
/// the backward pass recomputes one layer at a time and pushes the gradient
/// through it, so activation memory is one layer's instead of all of them.
pub fn forward_backward(
    model: &dyn CausalLm,
    precision: Precision,
    input: &Tensor,
    targets: &Tensor,
    factor: f64,
    checkpointing: bool,
) -> f64 {
    let device = input.device();
    if !checkpointing {
        let loss = precision.autocast(device, || cross_entropy(&model.forward(input, None), targets));
        (&loss * factor).backward();
        return loss.double_value(&[]);
    }
    let embedded = precision.autocast(device, || model.embed(input, 0));
    let mut inputs = Vec::with_capacity(model.num_layers());
    let mut x = embedded.detach();
    tch::no_grad(|| {
        for i in 0..model.num_layers() {
            let next = precision.autocast(device, || model.layer(i, &x, 0, None));
            inputs.push(std::mem::replace(&mut x, next));
        }
    });
    let top = x.set_requires_grad(true);
    let loss = precision.autocast(device, || cross_entropy(&model.head(&top), targets));
    (&loss * factor).backward();
    let mut grad = top.grad();
    for i in (0..model.num_layers()).rev() {
        let x = inputs.pop().expect("one input per layer").set_requires_grad(true);
        let y = precision.autocast(device, || model.layer(i, &x, 0, None));
        // d(sum(y · g))/dθ = Jᵀg: the layer's share of the gradient.
        (y * &grad).sum(Kind::Float).backward();
        grad = x.grad();
    }
    (embedded * grad).sum(Kind::Float).backward();
    loss.double_value(&[])
}

/// The loss summed over this rank's share of the first `batches ×
/// batch_size` windows (fewer when the split is smaller), and how many
/// windows that share holds: rank `r` of `world` takes every `world`-th
/// window from `r`. The same windows at every evaluation.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &dyn CausalLm,
    precision: Precision,
    windows: &Windows,
    batches: usize,
    batch_size: usize,
    device: Device,
    rank: usize,
    world: usize,
) -> Result<(f64, u64), DataError> {
    let total = ((batches * batch_size) as u64).min(windows.count());
    let mine: Vec<u64> = (rank as u64..total).step_by(world).collect();
    let mut sum = 0.0;
    tch::no_grad(|| {
        for indices in mine.chunks(batch_size) {
            let (input, targets) = batch(windows, indices, device)?;
            let loss = precision.autocast(device, || cross_entropy(&model.forward(&input, None), &targets));
            sum += loss.double_value(&[]) * indices.len() as f64;
        }
        Ok((sum, mine.len() as u64))
    })
}
