//! The engine: runs a pipeline's steps over the documents of a task's units
//! and accounts for every document.
//!
//! Steps plug in through one trait, [`step::Step`] (a document in, keep or
//! drop with a reason out, text rewritable), and one table,
//! [`registry::STEP_TYPES`]. Filters from `curate-filters` become steps
//! through [`step::FilterStep`], so that crate never sees the engine's types.

pub mod executor;
pub mod progress;
pub mod registry;
pub mod state;
pub mod stats;
pub mod step;
pub mod task;
pub mod workers;
