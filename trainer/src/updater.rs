//! The optimizer as the training loop sees it: AdamW over the whole model
//! (one process, or data parallel where every rank holds all of it), or
//! AdamW sharded across ranks (ZeRO-1, ZeRO-2). The loop calls the same
//! steps either way: drop the gradients, scale them, take their global
//! norm, update.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use crate::distributed::zero::ShardedAdamW;
use crate::distributed::DataParallel;
use crate::optim::{self, AdamW};

pub enum Updater {
    Whole(AdamW),
    Sharded(ShardedAdamW),
}

/// ZeRO-2's reduced gradients, one share per bucket (none otherwise).
fn shares(dp: Option<&DataParallel>) -> &[Tensor] {
    dp.map_or(&[], |dp| dp.reducer.shares.as_slice())
}

impl Updater {
    pub fn zero_grad(&mut self) {
        match self {
            Updater::Whole(a) => a.zero_grad(),
            Updater::Sharded(s) => s.params.iter().for_each(optim::reset_grad),
        }
    }

    /// Multiplies the gradients the update will read by `factor`.
    pub fn scale_grads(&self, factor: f64, dp: Option<&DataParallel>) {
        match self {
            Updater::Whole(a) => optim::scale_grads(&a.params, factor),
            Updater::Sharded(s) => s.scale_grads(shares(dp), factor),
        }
    }

    /// The L2 norm of the whole (averaged) gradient, the same on every rank.
    pub fn grad_norm(&self, dp: Option<&DataParallel>) -> anyhow::Result<f64> {
        Ok(match self {
            Updater::Whole(a) => optim::grad_norm(&a.params),
            Updater::Sharded(s) => s.grad_norm(shares(dp), &dp.expect("sharded means data parallel").group)?,
        })
    }

    pub fn step(&mut self, lr: f64, dp: Option<&DataParallel>) -> anyhow::Result<()> {
        match self {
            Updater::Whole(a) => a.step(lr)?,
            Updater::Sharded(s) => {
                let dp = dp.expect("sharded means data parallel");
                s.step(lr, shares(Some(dp)), &dp.layout, &dp.group)?
            }
        }
        Ok(())
    }

    /// Updates applied so far.
    pub fn updates(&self) -> i64 {
        match self {
            Updater::Whole(a) => a.step,
            Updater::Sharded(s) => s.step,
        }
    }

    pub fn set_updates(&mut self, n: i64) {
        match self {
            Updater::Whole(a) => a.step = n,
            Updater::Sharded(s) => s.step = n,
        }
    }

    /// The moments by checkpoint name (`exp_avg.NAME`, `exp_avg_sq.NAME`),
    /// whole; sharded state is gathered onto rank 0 (`None` elsewhere).
    /// Every rank calls this.
    pub fn moments(&self, dp: Option<&DataParallel>) -> anyhow::Result<Option<Vec<(String, Tensor)>>> {
        Ok(match self {
            Updater::Whole(a) => Some(
                a.params
                    .iter()
                    .flat_map(|p| {
                        [
                            (format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()),
                            (format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.shallow_clone()),
                        ]
                    })
                    .collect(),
            ),
            Updater::Sharded(s) => {
                let dp = dp.expect("sharded means data parallel");
                s.gather_moments(&dp.layout, &dp.group)?
            }
        })
    }

    /// Takes the moments a checkpoint holds (this rank's share, if sharded).
    pub fn load_moments(&mut self, moments: &BTreeMap<String, Tensor>, file: &Path) -> anyhow::Result<()> {
        match self {
            Updater::Whole(a) => {
                let targets: Vec<(String, Tensor)> = a
                    .params
                    .iter()
                    .flat_map(|p| {
                        [
                            (format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()),
                            (format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.shallow_clone()),
                        ]
                    })
                    .collect();
                crate::checkpoint::copy_into(&targets, moments, file)
            }
            Updater::Sharded(s) => s.load_moments(moments, file),
        }
    }

    /// Bytes of optimizer state this rank holds.
    pub fn state_bytes(&self) -> u64 {
        match self {
            Updater::Whole(a) => a.params.iter().map(|p| 2 * p.exp_avg.numel() as u64 * 4).sum(),
            Updater::Sharded(s) => s.state_bytes(),
        }
    }
}
