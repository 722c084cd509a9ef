//! Worker threads: a rayon pool of a given size, and units of work spread
//! over it. Each worker takes the next unit and runs it inside the pool, so
//! at most `workers` units are in flight (which bounds memory) while each
//! one's batches use every core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::ThreadPool;

#[derive(Debug, thiserror::Error)]
#[error("cannot start {threads} worker threads: {source}")]
pub struct PoolError {
    threads: usize,
    source: rayon::ThreadPoolBuildError,
}

/// A pool of `threads` threads named `curate-N` (as `top` and debuggers show them).
pub fn pool(threads: usize) -> Result<ThreadPool, PoolError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("curate-{i}"))
        .build()
        .map_err(|source| PoolError { threads, source })
}

/// More worker threads than this are refused: no machine here has as many
/// cores, and each thread costs a stack and a slice of every batch.
pub const MAX_THREADS: usize = 1024;

/// The given number of threads, or one per core.
pub fn thread_count(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// Runs `work(i)` for `i` in `0..count` on `workers` threads, each call
/// inside `pool`. After the first error `abort` is set and no further unit
/// starts (a running one can watch `abort` to stop early). Results come back
/// by index; `None` for units never started.
pub fn run_units<T: Send, E: Send>(
    count: usize,
    workers: usize,
    pool: &ThreadPool,
    abort: &AtomicBool,
    work: impl Fn(usize) -> Result<T, E> + Sync,
) -> Vec<Option<Result<T, E>>> {
    let results: Mutex<Vec<Option<Result<T, E>>>> = Mutex::new((0..count).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(count).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || abort.load(Ordering::Relaxed) {
                    break;
                }
                let result = pool.install(|| work(i));
                if result.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                results.lock().expect("no worker panics while holding the lock")[i] = Some(result);
            });
        }
    });
    results.into_inner().expect("workers are done")
}
