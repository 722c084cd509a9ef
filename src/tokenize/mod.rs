//! From curated text to token shards: training a byte-level BPE tokenizer
//! ([`train`]) and encoding documents into the shards the trainer reads
//! ([`encode`]; the formats themselves are defined in `curate-shards`).
//!
//! Both stream their input through the I/O layer's readers, so they take
//! the same inputs as `curate run` (files, folders, globs; JSON Lines and
//! Parquet) with the same accounting of bad records; encoding runs through
//! the stage driver ([`crate::stage`]), so it resumes as every stage does.

pub mod chat;
pub mod config;
pub mod encode;
pub mod error;
pub mod spill;
pub mod train;
pub mod writer;

pub use config::{TokenFormat, TokenizeConfig, TrainOn};
pub use error::TokenizeError;
