//! The pipeline: what `curate run` executes, above the steps and stages.
//!
//! - [`config`]: the pipeline file, validated before any work starts (every
//!   step's options checked through the [`registry`], no resource read).
//! - [`registry`]: step types by name; the one module that names the step
//!   implementations.
//! - [`executor`]: one task of a run through the stage driver, and
//!   [`judge`]: the work on one unit (read, steps, accounting, writers).
//! - [`stats`]: where every document went; [`schema`]: the Parquet output's
//!   columns; [`bench`]: step throughput for `curate bench`.

pub mod bench;
pub mod config;
pub mod executor;
mod judge;
pub mod registry;
mod schema;
pub mod stats;
