//! The bottom layer: what every stage runs on, and nothing about documents
//! or files.
//!
//! - [`task`]: which slice of the work this process owns (rank `R` of `W`),
//!   from flags or a launcher's environment.
//! - [`pool`]: the worker threads, and units of work spread over them.
//! - [`progress`]: a bar or periodic log lines on stderr.
//! - [`tally`]: counts with the first few locations, by kind: how errors
//!   and warnings are reported everywhere.
//! - [`hooks`]: the test hooks (`CURATE_TEST_*`), read here and nowhere else.
//! - [`options`]: enums chosen by name, and values refused with their key.
//! - [`memory`]: the process's peak resident memory.
//! - [`ErrorClass`]: how a failure exits the program.
//!
//! Nothing here imports from another module of the crate: every layer
//! above may use it.

pub mod hooks;
pub mod memory;
pub mod options;
pub mod pool;
pub mod progress;
pub mod tally;
pub mod task;

/// Which way a failure ends `curate`, decided by the error's kind and
/// mapped to an exit code in one place (`main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Refused before any work: a bad configuration, flag or input, or a
    /// stage asked for before the one it needs (exit code 2).
    Usage,
    /// The work started and failed: a write, a damaged intermediate file,
    /// a bad document under `on_error = "fail"` (exit code 1).
    Failed,
}
