//! ZeRO-1 and ZeRO-2: AdamW whose moments are sharded across ranks.
//!
//! Each rank owns one slice of every gradient bucket ([`super::buckets`]).
//! It keeps AdamW's moments for those elements only, updates only those
//! elements of the weights (with the same fused kernel as the unsharded
//! optimizer, on views of the parameters), and all-gathers the updated
//! slices, bucket by bucket, so that every rank ends the step with the
//! whole model. ZeRO-1 reads the owned gradients from the all-reduced
//! `.grad`; ZeRO-2 from its share of each reduce-scattered bucket, and the full gradients
//! are dropped as soon as their bucket is sent.
//!
//! Checkpoints hold the moments unsharded, by parameter name, exactly as
//! the single-process optimizer writes them: a job resumes on any number
//! of ranks.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::buckets::{Layout, Piece};
use super::group::{DistError, ProcessGroup, Reduce};
use crate::config::TrainingConfig;
use crate::optim::{decays, fused_adamw, squared_norm, AdamWError};

pub struct ShardedAdamW {
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    decay: Vec<bool>,
    pub pieces: Vec<Piece>,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Updates applied so far.
    pub step: i64,
}

impl ShardedAdamW {
    /// `params` in the reducer's numbering, which `layout` follows.
    pub fn new(params: &[(String, Tensor)], layout: &Layout, rank: usize, t: &TrainingConfig) -> ShardedAdamW {
        let device = params.first().map_or(tch::Device::Cpu, |p| p.1.device());
        let shard = layout.shard_len();
        ShardedAdamW {
            names: params.iter().map(|p| p.0.clone()).collect(),
            decay: params.iter().map(|(n, t)| decays(n, t)).collect(),
            params: params.iter().map(|p| p.1.shallow_clone()).collect(),
            pieces: layout.pieces(rank as i64),
            exp_avg: Tensor::zeros([shard], (Kind::Float, device)),
            exp_avg_sq: Tensor::zeros([shard], (Kind::Float, device)),
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.adam_eps,
            weight_decay: t.weight_decay,
            step: 0,
        }
    }

    /// This rank's reduced gradients, one view per piece. `shares`: ZeRO-2's
    /// reduced gradients, one per bucket; empty under ZeRO-1, whose are in
    /// `.grad`.
    fn grads(&self, shares: &[Tensor]) -> Vec<Tensor> {
        self.pieces
            .iter()
            .map(|p| match shares.get(p.bucket) {
                Some(share) => share.narrow(0, p.in_share, p.len),
                None => self.params[p.param].grad().view([-1]).narrow(0, p.offset, p.len),
            })
            .collect()
    }

    /// Multiplies the owned gradients by `factor`.
    pub fn scale_grads(&self, shares: &[Tensor], factor: f64) {
        tch::no_grad(|| {
            for mut g in self.grads(shares) {
                let _ = g.g_mul_scalar_(factor);
            }
        });
    }

    /// The global gradient norm: each rank's sum of squares, summed over ranks.
    pub fn grad_norm(&self, shares: &[Tensor], group: &ProcessGroup) -> Result<f64, DistError> {
        let sum = group.all_reduce_values(&[squared_norm(&self.grads(shares))], Reduce::Sum, "the gradient norm")?;
        Ok(sum[0].sqrt())
    }

    /// Updates the owned elements, then all-gathers every bucket.
    pub fn step(&mut self, lr: f64, shares: &[Tensor], layout: &Layout, group: &ProcessGroup) -> Result<(), StepError> {
        self.step += 1;
        let grads = self.grads(shares);
        for decay in [true, false] {
            let mut group_tensors = Vec::new();
            for (p, g) in self.pieces.iter().zip(&grads) {
                if self.decay[p.param] != decay {
                    continue;
                }
                group_tensors.push((
                    self.params[p.param].detach().view([-1]).narrow(0, p.offset, p.len),
                    g.shallow_clone(),
                    self.exp_avg.narrow(0, p.local, p.len),
                    self.exp_avg_sq.narrow(0, p.local, p.len),
                ));
            }
            let weight_decay = if decay { self.weight_decay } else { 0.0 };
            fused_adamw(&mut group_tensors, self.step, lr, self.beta1, self.beta2, weight_decay, self.eps)?;
        }
        self.all_gather(layout, group)?;
        Ok(())
    }

    fn all_gather(&self, layout: &Layout, group: &ProcessGroup) -> Result<(), DistError> {
        let world = layout.world;
        for (b, bucket) in layout.buckets.iter().enumerate() {
            let device = self.params[0].device();
            let mut mine = Tensor::zeros([bucket.len / world], (Kind::Float, device));
            let base = bucket.start / world;
            tch::no_grad(|| {
                for p in self.pieces.iter().filter(|p| p.bucket == b) {
                    let src = self.params[p.param].detach().view([-1]).narrow(0, p.offset, p.len);
                    mine.narrow(0, p.local - base, p.len).copy_(&src);
                }
            });
            let mut all = Tensor::zeros([bucket.len], (Kind::Float, device));
            group.all_gather(
                &mut all,
                &mut mine,
                &format!("the weights of bucket {} of {}", b + 1, layout.buckets.len()),
            )?;
            tch::no_grad(|| {
                for (i, param) in self.params.iter().enumerate().filter(|(i, _)| layout.bucket_of[*i] == b) {
                    let n = param.numel() as i64;
                    param.detach().view([-1]).copy_(&all.narrow(0, layout.offset_of[i] - bucket.start, n));
                }
            });
        }
        Ok(())
    }

    /// The moments of every parameter, whole, on rank 0 (`None` elsewhere):
    /// `exp_avg.NAME` and `exp_avg_sq.NAME`, as the unsharded optimizer
    /// checkpoints them.
    pub fn gather_moments(
        &self,
        layout: &Layout,
        group: &ProcessGroup,
    ) -> Result<Option<Vec<(String, Tensor)>>, DistError> {
        let world = layout.world;
        let shard = layout.shard_len();
        let mut out = Vec::new();
        for (prefix, moment) in [("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)] {
            let mut input = moment.shallow_clone();
            if group.rank != 0 {
                group.gather(&mut input, None, 0, &format!("the optimizer's {prefix}"))?;
                continue;
            }
            let mut all = Tensor::zeros([world * shard], (Kind::Float, moment.device()));
            group.gather(&mut input, Some(&mut all), 0, &format!("the optimizer's {prefix}"))?;
            let all = all.to_device(tch::Device::Cpu);
            let whole: Vec<Tensor> = self
                .params
                .iter()
                .map(|p| Tensor::zeros([p.numel() as i64], (Kind::Float, tch::Device::Cpu)))
                .collect();
            for rank in 0..world {
                for piece in layout.pieces(rank) {
                    whole[piece.param].narrow(0, piece.offset, piece.len).copy_(&all.narrow(
                        0,
                        rank * shard + piece.local,
                        piece.len,
                    ));
                }
            }
            for (i, t) in whole.into_iter().enumerate() {
                out.push((format!("{prefix}.{}", self.names[i]), t.view(self.params[i].size().as_slice())));
            }
        }
        Ok((group.rank == 0).then_some(out))
    }

    /// Takes this rank's slices of the moments a checkpoint holds.
    pub fn load_moments(&mut self, moments: &BTreeMap<String, Tensor>, file: &Path) -> anyhow::Result<()> {
        tch::no_grad(|| {
            for piece in &self.pieces {
                let name = &self.names[piece.param];
                for (prefix, target) in [("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)] {
                    let key = format!("{prefix}.{name}");
                    let Some(src) = moments.get(&key) else { anyhow::bail!("{}: no tensor `{key}`", file.display()) };
                    anyhow::ensure!(
                        src.numel() == self.params[piece.param].numel(),
                        "{}: `{key}` has shape {:?}, the model needs {:?}",
                        file.display(),
                        src.size(),
                        self.params[piece.param].size()
                    );
                    let src = src.to_kind(Kind::Float).reshape([-1]).narrow(0, piece.offset, piece.len);
                    target.narrow(0, piece.local, piece.len).copy_(&src);
                }
            }
            Ok(())
        })
    }

    /// Bytes of optimizer state this rank holds.
    pub fn state_bytes(&self) -> u64 {
        2 * self.exp_avg.numel() as u64 * 4
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    AdamW(#[from] AdamWError),
    #[error("{0}")]
    Dist(#[from] DistError),
}
