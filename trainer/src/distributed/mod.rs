//! Data-parallel training over PyTorch's c10d: Gloo on CPU, NCCL on CUDA.
//!
//! - [`environment`]: which rank this process is (torchrun, Slurm).
//! - [`launcher`]: `--nproc-per-node N`, N local ranks as `torchrun --standalone`.
//! - [`group`]: the process group and its collectives.
//! - [`buckets`]: how gradients are grouped and sharded.
//! - [`reducer`]: gradients averaged in buckets during the backward pass.
//! - [`zero`]: AdamW sharded across ranks (ZeRO-1, ZeRO-2).
//!
//! [`DataParallel`] ties them together for the training loop. Every rank
//! builds the same model from the same seed; rank 0's weights are then
//! broadcast, so that nothing but rank 0 decides where training starts.

pub mod buckets;
pub mod environment;
pub mod group;
pub mod launcher;
pub mod reducer;
pub mod zero;

use std::time::Duration;

use tch::{Device, Tensor};

use crate::config::DistributedConfig;
use buckets::Layout;
use environment::Launch;
use group::{Backend, DistError, ProcessGroup};
use reducer::{Mode, Reducer};

/// One rank's share of a data-parallel job.
pub struct DataParallel {
    /// Declared before the group, so its hooks go first.
    pub reducer: Reducer,
    pub layout: Layout,
    pub zero: u8,
    pub group: ProcessGroup,
    /// The trainable parameters, in the reducer's (sorted by name) order.
    pub params: Vec<(String, Tensor)>,
}

impl DataParallel {
    /// Joins the group and hooks the gradients of `params`. The buckets are
    /// laid out by [`DataParallel::calibrate`].
    pub fn join(
        launch: &Launch,
        device: Device,
        config: &DistributedConfig,
        params: Vec<(String, Tensor)>,
    ) -> Result<DataParallel, DistError> {
        let backend = if device.is_cuda() { Backend::Nccl } else { Backend::Gloo };
        if backend == Backend::Nccl && !Backend::nccl_available() {
            return Err(DistError {
                rank: launch.rank,
                what: "choosing the backend".into(),
                message: "a CUDA job of several ranks needs NCCL, and this curate-train was built without it \
                          (no CUDA headers at build time; see the README's Building note)"
                    .into(),
            });
        }
        let index = match device {
            Device::Cuda(i) => i,
            _ => 0,
        };
        let timeout = Duration::from_secs_f64(config.timeout_s);
        let group = ProcessGroup::join(launch, backend, index, timeout)?;
        let tensors: Vec<Tensor> = params.iter().map(|p| p.1.shallow_clone()).collect();
        let reducer = Reducer::new(&group, &tensors)?;
        let layout = Layout::new(&[], &[], 1, 1, 1);
        Ok(DataParallel { reducer, layout, zero: config.zero, group, params })
    }

    /// Lays out the buckets in the order `backward` (one forward and
    /// backward pass, whose gradients the caller then drops) produces the
    /// gradients, as DDP rebuilds its buckets after the first iteration.
    /// Rank 0's order is used everywhere, so every rank sends the same
    /// buckets in the same sequence.
    pub fn calibrate<E: From<DistError>>(
        &mut self,
        bucket_mb: f64,
        backward: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let n = self.params.len();
        let (order, counts) = self.reducer.calibrate(backward)?;
        let mut shared: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        shared.resize(n, -1);
        shared.extend(counts.iter().map(|&c| i64::from(c)));
        let shared = self.group.broadcast_values(&shared, 0, "the gradient order")?;
        let mut order: Vec<usize> = shared[..n].iter().filter(|&&i| i >= 0).map(|&i| i as usize).collect();
        let counts: Vec<i32> = shared[n..].iter().map(|&c| c as i32).collect();
        // Parameters whose gradient never arrived go last; their bucket is
        // sent with zeros when the backward pass ends.
        order.extend(counts.iter().enumerate().filter(|(_, &c)| c == 0).map(|(i, _)| i));
        let numel: Vec<i64> = self.params.iter().map(|p| p.1.numel() as i64).collect();
        let cap = ((bucket_mb * 1024.0 * 1024.0 / 4.0) as i64).max(1);
        // DDP's first bucket is 1 MiB: the last layers' gradients go out
        // while the backward pass is still early.
        let first_cap = cap.min(1024 * 1024 / 4);
        self.layout = Layout::new(&order, &numel, first_cap, cap, self.group.size as i64);
        let mode = if self.zero == 2 { Mode::ReduceScatter } else { Mode::AllReduce };
        self.reducer.set_layout(&self.layout, &counts, mode)?;
        Ok(())
    }

    /// Every rank takes rank 0's weights, one tensor at a time, in place
    /// (a flat copy of the model would be the run's memory peak).
    pub fn broadcast_weights(&self) -> Result<(), DistError> {
        for (name, p) in &self.params {
            let mut data = p.detach();
            self.group.broadcast(&mut data, 0, &format!("the initial weights ({name})"))?;
        }
        Ok(())
    }
}

/// This process's peak resident memory in bytes (VmHWM), or 0 where
/// /proc does not say.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
