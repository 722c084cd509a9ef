//! Near-duplicate removal with MinHash, in stages over shared storage:
//! [`signatures`] (datatrove-compatible [`minhash`] over its text
//! [`normalize`]ation) → [`buckets`] → [`clusters`] → [`filter`] (a pipeline
//! step). Each stage's files are in the [`frame`] envelope and verified when
//! read. Exact dedup and [`simhash`] run through the same stages
//! ([`minhash::Method`]);
//! line-level dedup is [`lines`] (counting) and [`line_step`] (the step).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::io::atomic;

pub mod buckets;
pub mod clusters;
pub mod docinfo;
pub mod filter;
pub mod frame;
pub mod line_step;
pub mod lines;
pub mod minhash;
pub mod mt19937;
pub mod normalize;
pub mod sigfile;
pub mod signatures;
pub mod simhash;

/// Files committed by this process, for the test hook in [`commit`].
static COMMITTED: AtomicU64 = AtomicU64::new(0);

/// Writes one of the stages' files atomically (temporary name, then rename).
///
/// Test hook: with `CURATE_TEST_PAUSE_AFTER_FILES=N`, the N-th file stops
/// under its temporary name, the process says so on stderr and waits, so
/// that a test can SIGKILL a stage midway. Costs one env lookup per file.
pub(crate) fn commit(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(limit) = std::env::var("CURATE_TEST_PAUSE_AFTER_FILES").ok().and_then(|v| v.parse::<u64>().ok()) {
        if COMMITTED.fetch_add(1, Ordering::SeqCst) + 1 == limit {
            std::fs::write(atomic::temp_path(path), bytes).map_err(fail)?;
            eprintln!("curate: paused for test before committing {}", path.display());
            loop {
                std::thread::park();
            }
        }
    }
    atomic::write(path, bytes).map_err(fail)
}
