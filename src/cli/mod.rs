//! The subcommands of `curate`, one file each; `main.rs` parses and dispatches.

pub mod bench;
pub mod dedup;
pub mod inspect;
pub mod lm;
pub mod run;
pub mod tokenizer;
pub mod trainer;

use std::process::ExitCode;

use curate::engine::stats::{Occurrences, Stats};

#[derive(clap::Args)]
pub struct InputArgs {
    /// A file, folder or glob of JSON Lines or Parquet (e.g. curated shards).
    #[arg(long)]
    pub input: String,
    #[arg(long, default_value = "text")]
    pub text_field: String,
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn fatal(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("curate: error: {e}");
    ExitCode::from(2)
}

/// The given number of threads, or one per core.
pub fn thread_count(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

pub fn fraction(value: f64, flag: &str) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag} must be between 0 and 1, not {value}"))
    }
}

pub fn summarise(who: &str, s: &Stats) {
    eprintln!(
        "curate: {who}kept {} of {} documents ({} dropped, {} errors)",
        s.kept_docs, s.input_docs, s.dropped_docs, s.error_docs
    );
    print_errors(&s.errors);
}

/// One line per error kind: how many, and where the first one was.
pub fn print_errors(errors: &std::collections::BTreeMap<String, Occurrences>) {
    for (kind, occ) in errors {
        eprintln!("curate:   {} {kind}, first at {}", occ.count, occ.examples.first().map_or("?", String::as_str));
    }
}
