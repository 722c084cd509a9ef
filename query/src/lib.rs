//! Queries over curate's annotated output, with Polars: the conditions of
//! `curate select` and `curate mix`, and the aggregates of `curate report`.
//!
//! Polars lives here and only here: the engine and the filters (the hot
//! path, on arrow-rs) do not depend on this crate, and it knows nothing of
//! them. The command line joins the two: it reads documents with the
//! engine and hands this crate columns of their fields.

mod fields;
pub mod page;
mod predicate;
mod profile;
pub mod svg;

pub use fields::{lookup, Fields, Typed};
pub use predicate::{FieldType, Predicate, Values};
pub use profile::{ColumnKind, Distribution, Shards};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A condition that does not parse, names a field the input lacks, or
    /// compares values of different types.
    #[error("--where {text:?}: {message}")]
    Expression { text: String, message: String },
    /// Polars failed on a batch the condition had been checked for.
    #[error("--where {text:?}: {message}")]
    Evaluate { text: String, message: String },
    /// Polars could not read or aggregate a set of Parquet shards.
    #[error("reading {files} Parquet shards (the first {first}): {message}")]
    Scan { files: usize, first: String, message: String },
}
