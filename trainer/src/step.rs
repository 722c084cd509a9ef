//! One micro-batch's forward and backward pass, with or without activation
//! checkpointing, and the evaluation loss.

use tch::{Device, Kind, Tensor};

use crate::data::{Data, DataError};
use crate::model::{cross_entropy, cross_entropy_sum, CausalLm, Packing, Place, IGNORE};
use crate::precision::Precision;

/// A micro-batch on its device: inputs and targets `[B, seq_len]`, and for
/// packed examples where each token sits.
pub struct Batch {
    pub input: Tensor,
    pub targets: Tensor,
    pub packing: Option<Packing>,
    /// Packed examples: the loss is the sum over trained targets divided by
    /// this (the trained targets of the whole step, over ranks; set by the
    /// caller). Windows take the mean over their targets.
    pub normaliser: f64,
}

impl Batch {
    fn place(&self) -> Place<'_> {
        match &self.packing {
            Some(p) => Place::Packed(p),
            None => Place::From(0),
        }
    }

    /// Targets the loss counts.
    pub fn trained(&self) -> u64 {
        match self.packing {
            Some(_) => self.targets.ne(IGNORE).sum(Kind::Int64).int64_value(&[]) as u64,
            None => self.targets.numel() as u64,
        }
    }

    fn loss(&self, logits: &Tensor) -> Tensor {
        match self.packing {
            Some(_) => cross_entropy_sum(logits, &self.targets) / self.normaliser,
            None => cross_entropy(logits, &self.targets),
        }
    }
}

/// Micro-batch `indices` of `data`, on `device`.
pub fn batch(data: &Data, indices: &[u64], device: Device) -> Result<Batch, DataError> {
    let b = indices.len() as i64;
    match data {
        Data::Windows(windows) => {
            let mut tokens = Vec::with_capacity(indices.len() * (windows.seq_len() + 1));
            for &i in indices {
                windows.read(i, &mut tokens)?;
            }
            let t = windows.seq_len() as i64;
            let all = Tensor::from_slice(&tokens).view([b, t + 1]);
            Ok(Batch {
                input: all.narrow(1, 0, t).to_device(device),
                targets: all.narrow(1, 1, t).to_device(device),
                packing: None,
                normaliser: 1.0,
            })
        }
        Data::Packed(rows) => {
            let t = rows.seq_len() as i64;
            let (mut tokens, mut targets, mut positions, mut segments) = (vec![], vec![], vec![], vec![]);
            for &i in indices {
                let row = rows.row(i);
                tokens.extend(row.tokens);
                targets.extend(row.targets);
                positions.extend(row.positions);
                segments.extend(row.segments);
            }
            let tensor = |v: &[i64]| Tensor::from_slice(v).view([b, t]).to_device(device);
            let packing = Packing::new(tensor(&positions), &tensor(&segments));
            let batch =
                Batch { input: tensor(&tokens), targets: tensor(&targets), packing: Some(packing), normaliser: 1.0 };
            Ok(Batch { normaliser: batch.trained().max(1) as f64, ..batch })
        }
    }
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
    batch: &Batch,
    factor: f64,
    checkpointing: bool,
) -> f64 {
    let (input, place) = (&batch.input, batch.place());
    let device = input.device();
    if !checkpointing {
        let loss = precision.autocast(device, || batch.loss(&model.forward_at(input, place)));
        (&loss * factor).backward();
        return loss.double_value(&[]);
    }
    let embedded = precision.autocast(device, || model.embed(input, place));
    let mut inputs = Vec::with_capacity(model.num_layers());
    let mut x = embedded.detach();
    tch::no_grad(|| {
        for i in 0..model.num_layers() {
            let next = precision.autocast(device, || model.layer(i, &x, place, None));
            inputs.push(std::mem::replace(&mut x, next));
        }
    });
    let top = x.set_requires_grad(true);
    let loss = precision.autocast(device, || batch.loss(&model.head(&top)));
    (&loss * factor).backward();
    let mut grad = top.grad();
    for i in (0..model.num_layers()).rev() {
        let x = inputs.pop().expect("one input per layer").set_requires_grad(true);
        let y = precision.autocast(device, || model.layer(i, &x, place, None));
        // d(sum(y · g))/dθ = Jᵀg: the layer's share of the gradient.
        (y * &grad).sum(Kind::Float).backward();
        grad = x.grad();
    }
    (embedded * grad).sum(Kind::Float).backward();
    loss.double_value(&[])
}

/// The loss summed over this rank's share of the first `batches ×
/// batch_size` sequences (fewer when the split is smaller), and how many
/// targets that sum covers: rank `r` of `world` takes every `world`-th
/// sequence from `r`. The same sequences at every evaluation.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &dyn CausalLm,
    precision: Precision,
    data: &Data,
    batches: usize,
    batch_size: usize,
    device: Device,
    rank: usize,
    world: usize,
) -> Result<(f64, u64), DataError> {
    let total = ((batches * batch_size) as u64).min(data.count());
    let mine: Vec<u64> = (rank as u64..total).step_by(world).collect();
    let (mut sum, mut count) = (0.0, 0);
    tch::no_grad(|| {
        for indices in mine.chunks(batch_size) {
            let mut batch = batch(data, indices, device)?;
            batch.normaliser = 1.0;
            let n = batch.trained();
            let loss = precision.autocast(device, || batch.loss(&model.forward_at(&batch.input, batch.place())));
            // Windows give a mean, packed examples a sum.
            sum += loss.double_value(&[]) * if batch.packing.is_some() { 1.0 } else { n as f64 };
            count += n;
        }
        Ok((sum, count))
    })
}
