//! One micro-batch's forward and backward pass, with or without activation
//! checkpointing, and the evaluation loss.

use tch::{Device, Kind, Tensor};

use std::cell::Cell;

use crate::data::{Data, DataError};
use crate::dpo::{self, DpoConfig, DpoStats};
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
    /// Preference pairs: rows alternate chosen and rejected, and the loss is DPO's.
    pub dpo: Option<DpoBatch>,
    /// Input tokens, padding left out.
    pub tokens: u64,
}

pub struct DpoBatch {
    pub config: DpoConfig,
    /// `[B, 2]` the reference model's summed log-probabilities.
    pub reference: Tensor,
    /// What the last loss computed, for the metrics.
    pub stats: Cell<DpoStats>,
}

impl Batch {
    fn place(&self) -> Place<'_> {
        match &self.packing {
            Some(p) if self.dpo.is_none() => Place::Packed(p),
            _ => Place::From(0),
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
        if let Some(d) = &self.dpo {
            let (sums, counts) = dpo::sequence_logps(logits, &self.targets);
            let (loss, stats) = dpo::loss(&d.config, &sums.view([-1, 2]), &d.reference, &counts.view([-1, 2]));
            d.stats.set(stats);
            return loss;
        }
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
                dpo: None,
                tokens: (b * t) as u64,
            })
        }
        Data::Packed(rows) => {
            let t = rows.seq_len() as i64;
            // A pair is two rows: its chosen and its rejected completion.
            let row_indices: Vec<u64> = match rows.pairs {
                Some(_) => indices.iter().flat_map(|&i| [2 * i, 2 * i + 1]).collect(),
                None => indices.to_vec(),
            };
            let b = row_indices.len() as i64;
            let all: Vec<crate::packing::Row> = row_indices.iter().map(|&i| rows.row(i)).collect();
            // A pair's rows hold one completion each: the batch is as long
            // as its longest, not seq_len (the padding after it changes nothing).
            let t = match rows.pairs {
                Some(_) => all.iter().map(|r| r.segments.iter().filter(|&&s| s == 0).count()).max().unwrap_or(1) as i64,
                None => t,
            };
            let real: usize = all.iter().map(|r| r.len).sum();
            let (mut tokens, mut targets, mut positions, mut segments) = (vec![], vec![], vec![], vec![]);
            for row in all {
                let n = t as usize;
                tokens.extend(&row.tokens[..n]);
                targets.extend(&row.targets[..n]);
                positions.extend(&row.positions[..n]);
                segments.extend(&row.segments[..n]);
            }
            let tensor = |v: &[i64]| Tensor::from_slice(v).view([b, t]).to_device(device);
            let packing = Packing::new(tensor(&positions), &tensor(&segments));
            let dpo = rows.pairs.as_ref().map(|p| {
                let table = p.reference.as_ref().expect("the reference pass runs before any DPO batch");
                let at = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
                DpoBatch {
                    config: p.config.clone(),
                    reference: table.index_select(0, &at).to_device(device),
                    stats: Cell::new(DpoStats::default()),
                }
            });
            let batch = Batch {
                input: tensor(&tokens),
                targets: tensor(&targets),
                packing: Some(packing),
                normaliser: 1.0,
                dpo,
                tokens: real as u64,
            };
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
) -> Result<Evaluation, DataError> {
    let total = ((batches * batch_size) as u64).min(data.count());
    let mine: Vec<u64> = (rank as u64..total).step_by(world).collect();
    let (mut sum, mut count, mut pairs) = (0.0, 0, DpoStats::default());
    tch::no_grad(|| {
        for indices in mine.chunks(batch_size) {
            let mut batch = batch(data, indices, device)?;
            batch.normaliser = 1.0;
            let n = batch.trained();
            let loss = precision.autocast(device, || batch.loss(&model.forward_at(&batch.input, batch.place())));
            if let Some(d) = &batch.dpo {
                // DPO's loss is a mean over the batch's pairs: its stats hold the sum.
                pairs.add(&d.stats.get());
                continue;
            }
            // Windows give a mean, packed examples a sum.
            sum += loss.double_value(&[]) * if batch.packing.is_some() { 1.0 } else { n as f64 };
            count += n;
        }
        if pairs.pairs > 0.0 {
            return Ok(Evaluation { sum: pairs.loss, count: pairs.pairs as u64, dpo: Some(pairs) });
        }
        Ok(Evaluation { sum, count, dpo: None })
    })
}

/// An evaluation's loss summed over `count` targets (pairs for DPO), and
/// DPO's stats.
pub struct Evaluation {
    pub sum: f64,
    pub count: u64,
    pub dpo: Option<DpoStats>,
}

/// The reference model's summed log-probabilities of every pair of `rows`
/// (`[pairs, 2]`, on the CPU): the model as it is now, without its LoRA
/// adapters.
pub fn reference_logps(
    model: &dyn CausalLm,
    precision: Precision,
    rows: &crate::packing::Rows,
    batch_size: usize,
    device: Device,
) -> Tensor {
    let t = rows.seq_len() as i64;
    let mut out = Vec::with_capacity(rows.rows() as usize);
    tch::no_grad(|| {
        crate::model::lora::without_adapters(|| {
            let all: Vec<u64> = (0..rows.rows()).collect();
            for chunk in all.chunks(2 * batch_size.max(1)) {
                let (mut tokens, mut targets) = (Vec::new(), Vec::new());
                for &i in chunk {
                    let row = rows.row(i);
                    tokens.extend(row.tokens);
                    targets.extend(row.targets);
                }
                let n = chunk.len() as i64;
                let ids = Tensor::from_slice(&tokens).view([n, t]).to_device(device);
                let targets = Tensor::from_slice(&targets).view([n, t]).to_device(device);
                let logits = precision.autocast(device, || model.forward_at(&ids, Place::From(0)));
                let (sums, _) = dpo::sequence_logps(&logits, &targets);
                out.push(sums.to_device(Device::Cpu));
            }
        })
    });
    Tensor::cat(&out, 0).view([-1, 2])
}
