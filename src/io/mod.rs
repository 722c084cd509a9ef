//! Files in and out: documents ([`doc`]), the formats ([`format`]), finding
//! inputs and cutting them into units of work ([`plan`]), streaming
//! documents out of a unit in bounded batches ([`read`], WARC and WET
//! archives in [`warc`], and [`docs`] for commands that only read),
//! writing shards ([`write`]), and publishing
//! files atomically and durably ([`atomic`]). An input file may be an
//! object in an object store: [`source`] reads either kind.
//!
//! The unit is the engine's grain of work, resume and output: a whole
//! compressed file, a byte range of a plain JSON Lines file, or one Parquet
//! row group. Units are numbered from the sorted file list alone, so every
//! task of a run (and every rerun) agrees on them, whatever the number of
//! tasks or threads; each unit writes its own shards, named by its number.
//!
//! This layer knows nothing of steps, stages or pipelines.

pub mod atomic;
pub mod doc;
pub mod docs;
pub mod format;
pub mod plan;
pub mod read;
pub mod source;
pub mod warc;
pub mod write;
