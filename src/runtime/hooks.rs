//! Test hooks: the only place `curate` reads a `CURATE_TEST_*` variable.
//! Each lets an end-to-end test stop the real binary at a chosen point, to
//! kill it there or to make a step fail, and costs one cached lookup where
//! it sits. The test utilities clear every name in [`ALL`] before they run
//! the binary, so a variable left in a developer's shell cannot leak in.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The writer that writes the N-th batch of `curate run` (kept and rejected
/// writers count together) stops once the batch is in its temporary file.
pub const PAUSE_AFTER_BATCHES: &str = "CURATE_TEST_PAUSE_AFTER_BATCHES";
/// The N-th file committed atomically stops under its temporary name.
pub const PAUSE_AFTER_FILES: &str = "CURATE_TEST_PAUSE_AFTER_FILES";
/// A step panics on every document whose text contains this mark.
pub const PANIC_ON: &str = "CURATE_TEST_PANIC_ON";

pub const ALL: &[&str] = &[PAUSE_AFTER_BATCHES, PAUSE_AFTER_FILES, PANIC_ON];

fn number(name: &'static str, cell: &'static OnceLock<Option<u64>>) -> Option<u64> {
    *cell.get_or_init(|| std::env::var(name).ok().and_then(|v| v.parse().ok()))
}

/// Says so on stderr (the test waits for this line) and never returns, so
/// that the test can SIGKILL the process at exactly this point.
fn pause(what: &str) -> ! {
    eprintln!("curate: paused for test {what}");
    loop {
        std::thread::park();
    }
}

/// Called after each batch a writer wrote (see [`PAUSE_AFTER_BATCHES`]).
pub fn batch_written() {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if let Some(limit) = number(PAUSE_AFTER_BATCHES, &LIMIT) {
        if SEEN.fetch_add(1, Ordering::SeqCst) + 1 == limit {
            pause(&format!("after {limit} batches"));
        }
    }
}

/// Called before a file is committed (see [`PAUSE_AFTER_FILES`]): on the
/// chosen file, `write_temporary` puts its bytes under the temporary name
/// and the process pauses there.
pub fn committing(path: &Path, write_temporary: impl FnOnce()) {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if let Some(limit) = number(PAUSE_AFTER_FILES, &LIMIT) {
        if SEEN.fetch_add(1, Ordering::SeqCst) + 1 == limit {
            write_temporary();
            pause(&format!("before committing {}", path.display()));
        }
    }
}

/// Called on each document before a step judges it (see [`PANIC_ON`]).
pub fn judging(text: &str) {
    static MARK: OnceLock<Option<String>> = OnceLock::new();
    if let Some(mark) = MARK.get_or_init(|| std::env::var(PANIC_ON).ok().filter(|m| !m.is_empty())) {
        if text.contains(mark.as_str()) {
            panic!("test panic on {mark:?}");
        }
    }
}
