//! Near-duplicate removal in stages over shared storage:
//! [`signatures`] (datatrove-compatible [`minhash`] over its text
//! [`normalize`]ation) → [`buckets`] → [`clusters`] → [`filter`] (a pipeline
//! step). Each stage's files are in the [`frame`] envelope and verified when
//! read; a file that does not verify is a [`error::DedupError::Damaged`]
//! naming it. Exact dedup and [`simhash`] run through the same stages
//! ([`minhash::Method`]); line-level dedup is [`lines`] (counting) and
//! [`line_step`] (the step).
//!
//! The stages that read the input (signatures, line counts) run through the
//! stage driver ([`crate::stage`]), as `curate run` does; the steps plug into
//! the executor through [`crate::step::Step`] like any other.

pub mod buckets;
pub mod clusters;
pub mod docinfo;
pub mod error;
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

pub use error::DedupError;
