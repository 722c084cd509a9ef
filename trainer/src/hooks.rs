//! Test hooks: the only place `curate-train` reads a `CURATE_TEST_*`
//! variable. The trainer's tests clear every name in [`ALL`] before they
//! run the binary, so a variable left in a developer's shell cannot leak in.

use std::sync::OnceLock;

/// Abort the process (as a kill would) right after this step.
pub const ABORT_AFTER_STEP: &str = "CURATE_TEST_ABORT_AFTER_STEP";

/// `RANK:STEP`: that rank sends itself SIGKILL right after that step, as
/// a rank lost to the OOM killer or a dead node would vanish.
pub const KILL_RANK_AFTER_STEP: &str = "CURATE_TEST_KILL_RANK_AFTER_STEP";

/// `RANK:STEP`: that rank stops itself (SIGSTOP) right after that step, as
/// a hung rank would stop answering.
pub const STOP_RANK_AFTER_STEP: &str = "CURATE_TEST_STOP_RANK_AFTER_STEP";

/// After this step, rank 0 sends SIGTERM to its parent (the launcher), as
/// a scheduler cancelling the job would.
pub const TERMINATE_LAUNCHER_AFTER_STEP: &str = "CURATE_TEST_TERMINATE_LAUNCHER_AFTER_STEP";

pub const ALL: &[&str] = &[ABORT_AFTER_STEP, KILL_RANK_AFTER_STEP, STOP_RANK_AFTER_STEP, TERMINATE_LAUNCHER_AFTER_STEP];

fn rank_and_step(name: &str) -> Option<(usize, u64)> {
    let value = std::env::var(name).ok()?;
    let (rank, step) = value.split_once(':')?;
    Some((rank.parse().ok()?, step.parse().ok()?))
}

/// Called by every rank after each training step.
#[allow(unsafe_code)]
pub fn step_done(step: u64, rank: usize) {
    static AFTER: OnceLock<Option<u64>> = OnceLock::new();
    static KILL: OnceLock<Option<(usize, u64)>> = OnceLock::new();
    static STOP: OnceLock<Option<(usize, u64)>> = OnceLock::new();
    static TERMINATE: OnceLock<Option<u64>> = OnceLock::new();
    if *AFTER.get_or_init(|| std::env::var(ABORT_AFTER_STEP).ok().and_then(|v| v.parse().ok())) == Some(step) {
        std::process::abort();
    }
    let terminate = TERMINATE.get_or_init(|| std::env::var(TERMINATE_LAUNCHER_AFTER_STEP).ok()?.parse().ok());
    if rank == 0 && *terminate == Some(step) {
        // SAFETY: a signal to this process's parent.
        unsafe { libc::kill(libc::getppid(), libc::SIGTERM) };
    }
    for (cell, name, signal) in
        [(&KILL, KILL_RANK_AFTER_STEP, libc::SIGKILL), (&STOP, STOP_RANK_AFTER_STEP, libc::SIGSTOP)]
    {
        if *cell.get_or_init(|| rank_and_step(name)) == Some((rank, step)) {
            // SAFETY: a signal to this very process.
            unsafe { libc::kill(libc::getpid(), signal) };
        }
    }
}
