//! The subcommands of `curate`, one file each; `main.rs` parses, dispatches
//! and maps the one [`Error`] type to an exit code. Flags are validated
//! here, before the library is asked to do anything.

pub mod bench;
pub mod classifier;
pub mod decont;
pub mod dedup;
pub mod inspect;
pub mod lm;
pub mod mix;
pub mod remote;
pub mod report;
pub mod run;
pub mod select;
pub mod slurm;
pub mod tokenizer;
pub mod trainer;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use curate::dedup::DedupError;
use curate::io::atomic::WriteError;
use curate::io::plan::PlanError;
use curate::pipeline::bench::BenchError;
use curate::pipeline::config::ConfigError;
use curate::pipeline::executor::RunError;
use curate::runtime::options::{BadValue, Named};
use curate::runtime::pool::PoolError;
use curate::runtime::tally::Kinds;
use curate::runtime::task::TaskError;
use curate::runtime::ErrorClass;
use curate::tokenize::TokenizeError;

/// Every way a subcommand fails, each with its class (and so its exit code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that do not go together or hold a bad value.
    #[error("{0}")]
    Usage(String),
    /// The work is not done, though nothing failed (tasks still running).
    #[error("{0}")]
    Unfinished(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Value(#[from] BadValue),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Dedup(#[from] DedupError),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// A pipeline's `[tokenize]` table names a tokenizer that does not load.
    #[error("{}: tokenize: {source}", file.display())]
    PipelineTokenizer { file: std::path::PathBuf, source: TokenizeError },
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An object store refused or could not be reached (retries spent).
    #[error(transparent)]
    Store(Box<curate_store::StoreError>),
    #[error(transparent)]
    LanguageModel(#[from] curate_filters::KneserNeyError),
    /// The trainer binary that `curate train` hands over to does not start.
    #[error("{}: {source}", path.display())]
    Trainer { path: std::path::PathBuf, source: std::io::Error },
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Usage(_)
            | Error::Config(_)
            | Error::Value(_)
            | Error::Task(_)
            | Error::Plan(_)
            | Error::LanguageModel(_) => ErrorClass::Usage,
            Error::Unfinished(_) | Error::Pool(_) | Error::Write(_) | Error::Trainer { .. } => ErrorClass::Failed,
            Error::Store(e) => match **e {
                curate_store::StoreError::BadUrl(_) | curate_store::StoreError::Setup { .. } => ErrorClass::Usage,
                _ => ErrorClass::Failed,
            },
            Error::Run(e) => e.class(),
            Error::Dedup(e) => e.class(),
            Error::Tokenize(e) | Error::PipelineTokenizer { source: e, .. } => e.class(),
            Error::Bench(BenchError::Step { .. }) => ErrorClass::Usage,
            Error::Bench(BenchError::Pool(_)) => ErrorClass::Failed,
        }
    }
}

/// A flag's value refused: `--flag: message`.
pub fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

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

impl InputArgs {
    /// The worker threads asked for, or one per core.
    pub fn threads(&self) -> Result<usize, Error> {
        threads(self.threads)
    }
}

/// `--threads` as given (at least 1), or one per core.
pub fn threads(n: Option<usize>) -> Result<usize, Error> {
    if n == Some(0) {
        return Err(usage("--threads must be at least 1"));
    }
    if let Some(n) = n.filter(|&n| n > curate::runtime::pool::MAX_THREADS) {
        return Err(usage(format!(
            "--threads {n} is more than {} (the most curate starts)",
            curate::runtime::pool::MAX_THREADS
        )));
    }
    Ok(curate::runtime::pool::thread_count(n))
}

/// Parses an enum the library names ([`Named`]), listing its names in `--help`.
pub fn named<T: Named + Clone>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.name())).map(|s| T::from_name(&s).expect("a listed name"))
}

pub fn fraction(value: f64, flag: &str) -> Result<f64, Error> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(usage(format!("{flag} must be between 0 and 1, not {value}")))
    }
}

pub fn summarise(who: &str, s: &curate::pipeline::stats::Stats) {
    eprintln!(
        "curate: {who}kept {} of {} documents ({} dropped, {} errors)",
        s.kept_docs, s.input_docs, s.dropped_docs, s.errors.docs
    );
    print_errors(&s.errors.kinds);
}

/// One line per error kind: how many, and where the first one was.
pub fn print_errors(errors: &Kinds) {
    for (kind, occ) in errors.iter() {
        eprintln!("curate:   {} {kind}, first at {}", occ.count, occ.examples.first().map_or("?", String::as_str));
    }
}
