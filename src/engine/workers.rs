//! Units of work spread over worker threads: each worker takes the next
//! unit and runs it inside the rayon pool, so at most `workers` units are in
//! flight (which bounds memory) while each one's batches use every core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::ThreadPool;

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
