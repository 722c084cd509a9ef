//! curate: a streaming engine that turns raw text shards into curated,
//! training-ready shards.
//!
//! The crate is built in layers; a module imports only from layers below
//! its own (`tests/cli/layers.rs` fails on an import that points up):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`runtime`] | tasks and ranks, the worker pool, progress, tallies of errors, test hooks, exit classes |
//! | 1 | [`io`] | documents, formats, input planning, readers, shard writers, atomic and durable publication |
//! | 2 | [`step`], [`stage`] | the step trait (and the filter adapter); the one driver of every multi-task stage |
//! | 3 | [`dedup`], [`tokenize`] | the dedup stages and steps; tokenizer training and tokenization |
//! | 4 | [`decont`] | benchmark decontamination by n-grams (dedup's normalisation) |
//! | 5 | [`pipeline`] | the pipeline file, the step registry, the executor of `curate run`, its stats, `curate bench` |
//!
//! The command line (`src/main.rs`, `src/cli/`) sits on top, outside the
//! library, which does not depend on clap. The document filters live in
//! the `curate-filters` crate, which knows nothing of files or Arrow; the
//! token-shard formats in `curate-shards`, which the trainer reads too.
//! `docs/architecture.md` shows the data flow of `curate run` and where a
//! new step, stage, input format or model goes.

pub mod decont;
pub mod dedup;
pub mod io;
pub mod pipeline;
pub mod runtime;
pub mod stage;
pub mod step;
pub mod tokenize;
