//! A c10d process group (Gloo on CPU, NCCL on CUDA) and its collectives on
//! flat tensors, through `csrc/distributed.cpp`. Every call blocks until
//! the collective is done or has failed; a failure (a rank that died, or
//! one that hung past the timeout) is an error naming this rank and the
//! collective.

use std::ffi::{c_char, CString};
use std::time::Duration;

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::environment::Launch;

#[repr(C)]
pub(crate) struct RawGroup {
    _private: [u8; 0],
}

#[repr(C)]
struct RawStore {
    _private: [u8; 0],
}

extern "C" {
    fn curate_nccl_available() -> i32;
    fn curate_store_serve(
        port: i32,
        timeout_ms: i32,
        out: *mut *mut RawStore,
        port_out: *mut i32,
        error: *mut c_char,
        error_len: i32,
    ) -> i32;
    fn curate_store_free(store: *mut RawStore);
    fn curate_group_new(
        host: *const c_char,
        port: i32,
        agent_store: i32,
        prefix: *const c_char,
        rank: i32,
        size: i32,
        backend: i32,
        device: i32,
        timeout_ms: i32,
        out: *mut *mut RawGroup,
        error: *mut c_char,
        error_len: i32,
    ) -> i32;
    fn curate_group_free(group: *mut RawGroup);
    fn curate_all_reduce(group: *mut RawGroup, t: *mut C_tensor, op: i32, error: *mut c_char, len: i32) -> i32;
    fn curate_broadcast(group: *mut RawGroup, t: *mut C_tensor, root: i32, error: *mut c_char, len: i32) -> i32;
    fn curate_all_gather(
        group: *mut RawGroup,
        output: *mut C_tensor,
        input: *mut C_tensor,
        error: *mut c_char,
        len: i32,
    ) -> i32;
    fn curate_reduce_scatter(
        group: *mut RawGroup,
        output: *mut C_tensor,
        input: *mut C_tensor,
        error: *mut c_char,
        len: i32,
    ) -> i32;
    fn curate_gather(
        group: *mut RawGroup,
        input: *mut C_tensor,
        output: *mut C_tensor,
        root: i32,
        error: *mut c_char,
        len: i32,
    ) -> i32;
    fn curate_barrier(group: *mut RawGroup, error: *mut c_char, len: i32) -> i32;
}

/// A collective (or joining the group) failed on this rank.
#[derive(Debug, thiserror::Error)]
#[error("rank {rank}: {what} failed: {message}")]
pub struct DistError {
    pub rank: usize,
    pub what: String,
    pub message: String,
}

/// The buffer the shim writes a failure's message into.
pub(crate) struct ErrorBuffer([c_char; 2048]);

impl ErrorBuffer {
    pub(crate) fn new() -> ErrorBuffer {
        ErrorBuffer([0; 2048])
    }

    pub(crate) fn ptr(&mut self) -> *mut c_char {
        self.0.as_mut_ptr()
    }

    pub(crate) fn len(&self) -> i32 {
        self.0.len() as i32
    }

    pub(crate) fn message(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    /// Whether this binary was built with NCCL (CUDA headers at build time).
    pub fn nccl_available() -> bool {
        // SAFETY: a constant answer from the shim.
        #[allow(unsafe_code)]
        unsafe {
            curate_nccl_available() == 1
        }
    }
}

pub enum Reduce {
    Sum,
    Max,
}

pub struct ProcessGroup {
    raw: *mut RawGroup,
    pub rank: usize,
    pub size: usize,
    pub backend: Backend,
    /// Where the tensors it sends must be: the rank's GPU under NCCL.
    pub device: Device,
}

impl ProcessGroup {
    /// Joins the job `launch` describes; `device` is this rank's CUDA device
    /// under NCCL.
    #[allow(unsafe_code)]
    pub fn join(
        launch: &Launch,
        backend: Backend,
        device: usize,
        timeout: Duration,
    ) -> Result<ProcessGroup, DistError> {
        let fail = |message: String| DistError {
            rank: launch.rank,
            what: format!(
                "joining the {}-rank group at {}:{} ({})",
                launch.world, launch.master_addr, launch.master_port, launch.source
            ),
            message,
        };
        let host = CString::new(launch.master_addr.clone()).map_err(|e| fail(e.to_string()))?;
        let prefix = CString::new(format!("/worker/attempt_{}", launch.attempt)).expect("no NUL");
        let mut raw = std::ptr::null_mut();
        let mut error = ErrorBuffer::new();
        // SAFETY: NUL-terminated strings that outlive the call, an out
        // pointer, and an error buffer of the length given.
        let failed = unsafe {
            curate_group_new(
                host.as_ptr(),
                i32::from(launch.master_port),
                i32::from(launch.agent_store),
                prefix.as_ptr(),
                launch.rank as i32,
                launch.world as i32,
                if backend == Backend::Nccl { 1 } else { 0 },
                device as i32,
                timeout_ms(timeout),
                &mut raw,
                error.ptr(),
                error.len(),
            )
        };
        if failed != 0 {
            return Err(fail(error.message()));
        }
        let device = if backend == Backend::Nccl { Device::Cuda(device) } else { Device::Cpu };
        Ok(ProcessGroup { raw, rank: launch.rank, size: launch.world, backend, device })
    }

    pub(crate) fn raw(&self) -> *mut RawGroup {
        self.raw
    }

    fn check(&self, failed: i32, error: &ErrorBuffer, what: impl FnOnce() -> String) -> Result<(), DistError> {
        if failed == 0 {
            return Ok(());
        }
        Err(DistError { rank: self.rank, what: what(), message: error.message() })
    }

    /// Sums (or takes the maximum of) `t` over ranks, in place.
    #[allow(unsafe_code)]
    pub fn all_reduce(&self, t: &mut Tensor, op: Reduce, what: &str) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        let op = if matches!(op, Reduce::Max) { 1 } else { 0 };
        // SAFETY: a live group, a live tensor, an error buffer of the length given.
        let failed = unsafe { curate_all_reduce(self.raw, t.as_mut_ptr(), op, error.ptr(), error.len()) };
        self.check(failed, &error, || format!("all-reduce of {what}"))
    }

    /// Every rank gets `root`'s `t`, in place.
    #[allow(unsafe_code)]
    pub fn broadcast(&self, t: &mut Tensor, root: usize, what: &str) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        // SAFETY: as in all_reduce.
        let failed = unsafe { curate_broadcast(self.raw, t.as_mut_ptr(), root as i32, error.ptr(), error.len()) };
        self.check(failed, &error, || format!("broadcast of {what}"))
    }

    /// `output` (size × `input`'s elements) receives every rank's `input`, in rank order.
    #[allow(unsafe_code)]
    pub fn all_gather(&self, output: &mut Tensor, input: &mut Tensor, what: &str) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        // SAFETY: as in all_reduce.
        let failed =
            unsafe { curate_all_gather(self.raw, output.as_mut_ptr(), input.as_mut_ptr(), error.ptr(), error.len()) };
        self.check(failed, &error, || format!("all-gather of {what}"))
    }

    /// Sums `input` (size × `output`'s elements) over ranks; this rank keeps its chunk.
    #[allow(unsafe_code)]
    pub fn reduce_scatter(&self, output: &mut Tensor, input: &mut Tensor, what: &str) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        // SAFETY: as in all_reduce.
        let failed = unsafe {
            curate_reduce_scatter(self.raw, output.as_mut_ptr(), input.as_mut_ptr(), error.ptr(), error.len())
        };
        self.check(failed, &error, || format!("reduce-scatter of {what}"))
    }

    /// Rank `root` receives every rank's `input` into `output` (size × its
    /// elements); the others pass `None`.
    #[allow(unsafe_code)]
    pub fn gather(
        &self,
        input: &mut Tensor,
        output: Option<&mut Tensor>,
        root: usize,
        what: &str,
    ) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        let out = output.map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
        // SAFETY: as in all_reduce; the output may be null off the root.
        let failed = unsafe { curate_gather(self.raw, input.as_mut_ptr(), out, root as i32, error.ptr(), error.len()) };
        self.check(failed, &error, || format!("gather of {what}"))
    }

    #[allow(unsafe_code)]
    pub fn barrier(&self, what: &str) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        // SAFETY: a live group and an error buffer of the length given.
        let failed = unsafe { curate_barrier(self.raw, error.ptr(), error.len()) };
        self.check(failed, &error, || format!("barrier {what}"))
    }

    /// A few numbers summed (or maxed) over ranks.
    pub fn all_reduce_values(&self, values: &[f64], op: Reduce, what: &str) -> Result<Vec<f64>, DistError> {
        let mut t = Tensor::from_slice(values).to_device(self.device);
        self.all_reduce(&mut t, op, what)?;
        Ok(Vec::<f64>::try_from(&t.to_device(Device::Cpu)).expect("an f64 tensor"))
    }

    /// The mean of a number over ranks.
    pub fn mean(&self, value: f64, what: &str) -> Result<f64, DistError> {
        Ok(self.all_reduce_values(&[value], Reduce::Sum, what)?[0] / self.size as f64)
    }

    /// Every rank's `value`, in rank order.
    pub fn all_gather_value(&self, value: f64, what: &str) -> Result<Vec<f64>, DistError> {
        let mut input = Tensor::from_slice(&[value]).to_device(self.device);
        let mut all = Tensor::zeros([self.size as i64], (Kind::Double, self.device));
        self.all_gather(&mut all, &mut input, what)?;
        Ok(Vec::<f64>::try_from(&all.to_device(Device::Cpu)).expect("an f64 tensor"))
    }

    /// `root`'s `values` on every rank.
    pub fn broadcast_values(&self, values: &[i64], root: usize, what: &str) -> Result<Vec<i64>, DistError> {
        let mut t = Tensor::from_slice(values).to_device(self.device);
        self.broadcast(&mut t, root, what)?;
        Ok(Vec::<i64>::try_from(&t.to_device(Device::Cpu)).expect("an i64 tensor"))
    }
}

impl Drop for ProcessGroup {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: created by curate_group_new and freed once.
        unsafe { curate_group_free(self.raw) };
    }
}

/// A store server for ranks that all connect as clients, as torchrun's
/// agent hosts one; kept alive as long as this value.
pub struct AgentStore {
    raw: *mut RawStore,
    pub port: u16,
}

impl AgentStore {
    /// Serves on a free port of the loopback interface.
    #[allow(unsafe_code)]
    pub fn serve(timeout: Duration) -> Result<AgentStore, String> {
        let mut raw = std::ptr::null_mut();
        let mut port = 0;
        let mut error = ErrorBuffer::new();
        // SAFETY: out pointers and an error buffer of the length given.
        let failed =
            unsafe { curate_store_serve(0, timeout_ms(timeout), &mut raw, &mut port, error.ptr(), error.len()) };
        if failed != 0 {
            return Err(error.message());
        }
        Ok(AgentStore { raw, port: port as u16 })
    }
}

impl Drop for AgentStore {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: created by curate_store_serve and freed once.
        unsafe { curate_store_free(self.raw) };
    }
}

fn timeout_ms(timeout: Duration) -> i32 {
    timeout.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every collective through the shim, on a group of one rank (the
    /// multi-rank behaviour is tested end to end in tests/distributed.rs):
    /// the signatures on both sides of the FFI agree, and errors come back.
    #[test]
    fn each_collective_runs_on_a_one_rank_group() {
        let launch = Launch {
            rank: 0,
            world: 1,
            local_rank: 0,
            local_world: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            agent_store: false,
            attempt: 0,
            source: "test",
        };
        let group = ProcessGroup::join(&launch, Backend::Gloo, 0, Duration::from_secs(30)).unwrap();
        let values = [1.0f32, 2.0, 3.0, 4.0];
        let mut t = Tensor::from_slice(&values);
        group.all_reduce(&mut t, Reduce::Sum, "t").unwrap();
        group.broadcast(&mut t, 0, "t").unwrap();
        let mut out = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        group.all_gather(&mut out, &mut t, "t").unwrap();
        assert_eq!(Vec::<f32>::try_from(&out).unwrap(), values);
        let mut scattered = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        group.reduce_scatter(&mut scattered, &mut t, "t").unwrap();
        assert_eq!(Vec::<f32>::try_from(&scattered).unwrap(), values);
        let mut gathered = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        group.gather(&mut t, Some(&mut gathered), 0, "t").unwrap();
        assert_eq!(Vec::<f32>::try_from(&gathered).unwrap(), values);
        group.barrier("in the test").unwrap();
        assert_eq!(group.all_reduce_values(&[2.5], Reduce::Max, "x").unwrap(), vec![2.5]);
        assert_eq!(group.all_gather_value(7.0, "x").unwrap(), vec![7.0]);
        assert_eq!(group.broadcast_values(&[3, -1], 0, "x").unwrap(), vec![3, -1]);
        // A mismatched output comes back as an error naming rank and collective.
        let mut wrong = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let e = group.all_gather(&mut wrong, &mut t, "the test tensor").unwrap_err();
        assert!(e.to_string().starts_with("rank 0: all-gather of the test tensor failed: "), "{e}");
    }
}
