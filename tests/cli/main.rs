//! End-to-end tests of the `curate` binary on real files, one module per theme.

mod bad_input;
mod chat;
mod config;
mod decont;
mod dedup;
mod determinism;
mod exit_codes;
mod fasttext;
mod filters;
mod formats;
mod layers;
mod mix;
mod ranks;
mod report;
mod resume;
mod s3;
mod select;
mod slurm;
mod tokenize;
mod util;
mod warc;
