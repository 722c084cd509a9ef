//! Gradient averaging that overlaps the backward pass: the C++ reducer in
//! `csrc/distributed.cpp` hooks every parameter's gradient accumulation and
//! sends a bucket (see [`super::buckets`]) the moment its last gradient is
//! in, while autograd goes on computing the layers below. Only the backward
//! pass of a step's last micro-batch is armed, so gradient accumulation
//! communicates once per step.

use std::ffi::c_char;

use tch::Tensor;
use torch_sys::C_tensor;

use super::buckets::Layout;
use super::group::{DistError, ErrorBuffer, ProcessGroup, RawGroup};

#[repr(C)]
struct RawReducer {
    _private: [u8; 0],
}

extern "C" {
    fn curate_reducer_new(
        group: *mut RawGroup,
        params: *const *mut C_tensor,
        n: i32,
        out: *mut *mut RawReducer,
        error: *mut c_char,
        error_len: i32,
    ) -> i32;
    fn curate_reducer_free(reducer: *mut RawReducer);
    fn curate_reducer_calibrate(reducer: *mut RawReducer, on: i32, order: *mut i32, counts: *mut i32);
    fn curate_reducer_layout(
        reducer: *mut RawReducer,
        mode: i32,
        bucket: *const i32,
        offset: *const i64,
        expected: *const i32,
        n_buckets: i32,
        starts: *const i64,
        lens: *const i64,
        error: *mut c_char,
        error_len: i32,
    ) -> i32;
    fn curate_reducer_arm(reducer: *mut RawReducer);
    fn curate_reducer_take_share(reducer: *mut RawReducer, bucket: i32) -> *mut C_tensor;
    fn curate_reducer_finish(reducer: *mut RawReducer, error: *mut c_char, error_len: i32) -> i32;
}

/// What a step's communication leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every rank has the averaged gradients in `.grad` (DDP, ZeRO-1).
    AllReduce,
    /// Each rank has the averaged gradients of its shard only (ZeRO-2).
    ReduceScatter,
}

pub struct Reducer {
    raw: *mut RawReducer,
    rank: usize,
    params: usize,
    mode: Mode,
    buckets: usize,
    /// ZeRO-2's reduced gradients, this rank's share of each bucket, from
    /// the end of a step's backward pass to the end of its update.
    pub shares: Vec<Tensor>,
}

impl Reducer {
    /// Hooks `params` (the group must outlive the reducer).
    #[allow(unsafe_code)]
    pub fn new(group: &ProcessGroup, params: &[Tensor]) -> Result<Reducer, DistError> {
        let mut handles: Vec<Tensor> = params.iter().map(Tensor::shallow_clone).collect();
        let mut ptrs: Vec<*mut C_tensor> = handles.iter_mut().map(|p| p.as_mut_ptr()).collect();
        let mut raw = std::ptr::null_mut();
        let mut error = ErrorBuffer::new();
        // SAFETY: `ptrs` holds live tensor pointers (the shim copies the
        // handles), an out pointer and an error buffer of the length given.
        let failed = unsafe {
            curate_reducer_new(group.raw(), ptrs.as_mut_ptr(), ptrs.len() as i32, &mut raw, error.ptr(), error.len())
        };
        if failed != 0 {
            return Err(DistError { rank: group.rank, what: "hooking the gradients".into(), message: error.message() });
        }
        Ok(Reducer {
            raw,
            rank: group.rank,
            params: params.len(),
            mode: Mode::AllReduce,
            buckets: 0,
            shares: Vec::new(),
        })
    }

    /// Runs `backward` (one forward and backward pass) with the hooks
    /// recording: the order gradients became ready (`None` past the last
    /// that did) and how often each was accumulated.
    #[allow(unsafe_code)]
    pub fn calibrate<E>(&mut self, backward: impl FnOnce() -> Result<(), E>) -> Result<(Vec<usize>, Vec<i32>), E> {
        let mut order = vec![-1i32; self.params];
        let mut counts = vec![0i32; self.params];
        // SAFETY: a live reducer; the lists are only written when switching off.
        unsafe { curate_reducer_calibrate(self.raw, 1, order.as_mut_ptr(), counts.as_mut_ptr()) };
        let result = backward();
        // SAFETY: as above, with lists of `params` entries.
        unsafe { curate_reducer_calibrate(self.raw, 0, order.as_mut_ptr(), counts.as_mut_ptr()) };
        result?;
        Ok((order.into_iter().filter(|&i| i >= 0).map(|i| i as usize).collect(), counts))
    }

    /// Sets the buckets; `counts[i]`: accumulations of parameter `i` per
    /// backward pass, as calibrated.
    #[allow(unsafe_code)]
    pub fn set_layout(&mut self, layout: &Layout, counts: &[i32], mode: Mode) -> Result<(), DistError> {
        let bucket: Vec<i32> = layout.bucket_of.iter().map(|&b| b as i32).collect();
        let starts: Vec<i64> = layout.buckets.iter().map(|b| b.start).collect();
        let lens: Vec<i64> = layout.buckets.iter().map(|b| b.len).collect();
        let mut error = ErrorBuffer::new();
        // SAFETY: lists of one entry per parameter and per bucket, and an
        // error buffer of the length given.
        let failed = unsafe {
            curate_reducer_layout(
                self.raw,
                if mode == Mode::AllReduce { 1 } else { 2 },
                bucket.as_ptr(),
                layout.offset_of.as_ptr(),
                counts.as_ptr(),
                starts.len() as i32,
                starts.as_ptr(),
                lens.as_ptr(),
                error.ptr(),
                error.len(),
            )
        };
        if failed != 0 {
            return Err(DistError { rank: self.rank, what: "laying out the buckets".into(), message: error.message() });
        }
        (self.mode, self.buckets) = (mode, layout.buckets.len());
        Ok(())
    }

    /// The next backward pass sends its gradients.
    #[allow(unsafe_code)]
    pub fn arm(&mut self) {
        // SAFETY: a live reducer.
        unsafe { curate_reducer_arm(self.raw) };
    }

    /// Waits for every bucket of the armed backward pass.
    #[allow(unsafe_code)]
    pub fn finish(&mut self) -> Result<(), DistError> {
        let mut error = ErrorBuffer::new();
        // SAFETY: a live reducer and an error buffer of the length given.
        let failed = unsafe { curate_reducer_finish(self.raw, error.ptr(), error.len()) };
        if failed != 0 {
            return Err(DistError {
                rank: self.rank,
                what: "averaging the gradients".into(),
                message: error.message(),
            });
        }
        if self.mode == Mode::ReduceScatter {
            self.shares = (0..self.buckets)
                .map(|b| {
                    // SAFETY: after a successful finish every bucket has a
                    // share; the shim hands over a `new at::Tensor`, which
                    // tch adopts and frees.
                    unsafe {
                        let share = curate_reducer_take_share(self.raw, b as i32);
                        assert!(!share.is_null(), "gradient bucket {b} has no share after the step's collectives");
                        Tensor::from_ptr(share)
                    }
                })
                .collect();
        }
        Ok(())
    }
}

impl Drop for Reducer {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: created by curate_reducer_new and freed once; it removes its hooks.
        unsafe { curate_reducer_free(self.raw) };
    }
}
