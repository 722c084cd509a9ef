//! curate: a streaming engine that turns raw text shards into curated,
//! training-ready shards.
//!
//! - [`config`]: the pipeline file, validated before any work starts.
//! - [`io`]: input planning (files → units), streaming readers, atomic
//!   shard writers.
//! - [`engine`]: the step trait and registry, the task executor, stats,
//!   resume state.
//! - [`doc`]: a document in flight; fields other than text stay raw JSON.
//!
//! The document filters themselves live in the `curate-filters` crate,
//! which knows nothing of files or Arrow.

pub mod bench;
pub mod config;
pub mod dedup;
pub mod doc;
pub mod engine;
pub mod io;
pub mod tokenize;
