//! Test hooks: the only place `curate-train` reads a `CURATE_TEST_*`
//! variable. The trainer's tests clear every name in [`ALL`] before they
//! run the binary, so a variable left in a developer's shell cannot leak in.

use std::sync::OnceLock;

/// Abort the process (as a kill would) right after this step.
pub const ABORT_AFTER_STEP: &str = "CURATE_TEST_ABORT_AFTER_STEP";

pub const ALL: &[&str] = &[ABORT_AFTER_STEP];

/// Called after each training step.
pub fn step_done(step: u64) {
    static AFTER: OnceLock<Option<u64>> = OnceLock::new();
    if *AFTER.get_or_init(|| std::env::var(ABORT_AFTER_STEP).ok().and_then(|v| v.parse().ok())) == Some(step) {
        std::process::abort();
    }
}
