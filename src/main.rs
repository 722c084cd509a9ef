//! The `curate` command line.
//!
//! Exit codes, mapped from the error's class in one place ([`exit_code`]):
//! 0 when the work completed (bad documents skipped under
//! `on_error = "skip"` are counted in stats.json, not failures); 1 when the
//! work started and failed (a write, a damaged intermediate file, a bad
//! document under `on_error = "fail"`); 2 when it was refused before any
//! work: a bad pipeline file, bad flags, unusable input, or a stage asked
//! for before the one it needs.

use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use clap::{Parser, Subcommand};

use curate::pipeline::config::Pipeline;
use curate::pipeline::registry::STEP_TYPES;
use curate::runtime::progress::ProgressMode;
use curate::runtime::ErrorClass;

use cli::bench::{bench, BenchArgs};
use cli::classifier::ClassifierCommand;
use cli::dedup::{dedup, DedupCommand};
use cli::inspect::{print_minhash, print_words};
use cli::lm::{train_lm, LmCommand};
use cli::mix::{mix, MixArgs};
use cli::report::{report, ReportArgs};
use cli::run::{run, stats};
use cli::select::{select, SelectArgs};
use cli::tokenizer::{tokenize, train_tokenizer, TokenizeArgs, TokenizerCommand};
use cli::{named, Error};

#[derive(Parser)]
#[command(name = "curate", version, about = "Curate text shards into training-ready data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file: read the input, apply the steps, write shards and stats.json.
    ///
    /// Reruns resume: finished units and tasks are skipped, unfinished ones are
    /// redone, and the output is byte-identical to an uninterrupted run.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Read this file, folder or glob instead of the pipeline's input.path.
        #[arg(long)]
        input: Option<String>,
        /// Write to this folder instead of the pipeline's output.path.
        #[arg(long)]
        output: Option<String>,
        /// This task's rank (also SLURM_ARRAY_TASK_ID, SLURM_PROCID or RANK).
        #[arg(long)]
        rank: Option<usize>,
        /// Number of tasks (also SLURM_ARRAY_TASK_COUNT, SLURM_NTASKS or WORLD_SIZE).
        #[arg(long)]
        world_size: Option<usize>,
        /// Worker threads (default: run.threads, else one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Progress display on stderr.
        #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
        progress: ProgressMode,
    },
    /// Check a pipeline file and print it with its defaults filled in; reads no data (the [tokenize] tokenizer is loaded).
    Check { pipeline: PathBuf },
    /// Sum the per-task stats of a multi-task run into OUTPUT/stats.json.
    Stats {
        /// The run's output folder.
        output: PathBuf,
        /// The run's number of tasks (default: the one found in OUTPUT/stats/).
        #[arg(long)]
        world_size: Option<usize>,
    },
    /// Keep the documents of annotated output for which a SQL condition over their fields holds.
    ///
    /// Output, stats.json, resumption and tasks as `curate run`; the others
    /// are dropped for the reason `select`.
    Select(SelectArgs),
    /// Mix sources into one corpus by token counts or weights, reproducibly (see the README's recipe).
    Mix(MixArgs),
    /// Write one self-contained HTML report of a run's output folder or a training run's folder.
    ///
    /// For a run: the drop funnel, histograms of annotated signals with their
    /// thresholds, languages, lengths, tokens and example documents per
    /// reason; for training: loss, learning rate, gradient norm, throughput.
    Report(ReportArgs),
    /// Submit a pipeline to Slurm as job arrays (with a dedup step: the chain of its stages), or only its unfinished tasks.
    ///
    /// Writes the sbatch scripts, the tasks' logs and jobs.json to --logs
    /// (default OUTPUT/slurm); --dry-run prints the scripts instead.
    Slurm(cli::slurm::SlurmArgs),
    /// Show the tasks of a pipeline submitted with `curate slurm`: done, pending, running, failed.
    Status(cli::slurm::StatusArgs),
    /// List the step types a pipeline can use.
    Steps,
    /// Measure filter throughput: each step alone and the whole pipeline, on one core and on all cores.
    Bench(BenchArgs),
    /// Print the English words of each input line's text, as the quality filters split them (one JSON array per line).
    #[command(hide = true)]
    Words,
    /// Print each input line's MinHash signature (datatrove's defaults), or null
    /// without enough words: one JSON array per line, for parity checks.
    #[command(hide = true)]
    Minhash,
    /// Print each input line's text as a fastText model predicts it: every label, in fastText's order.
    #[command(hide = true)]
    FasttextPredict { model: std::path::PathBuf },
    /// Index benchmark n-grams (for the decontaminate step).
    Decont {
        #[command(subcommand)]
        command: cli::decont::DecontCommand,
    },
    /// Train a fastText classifier (for the classifier step).
    Classifier {
        #[command(subcommand)]
        command: ClassifierCommand,
    },
    /// Train an n-gram language model (for the perplexity step).
    Lm {
        #[command(subcommand)]
        command: LmCommand,
    },
    /// Train a tokenizer.
    Tokenizer {
        #[command(subcommand)]
        command: TokenizerCommand,
    },
    /// Encode documents into token shards (tokenized Parquet and Megatron .bin/.idx) with a manifest.
    ///
    /// Rerunning after a crash re-encodes only unfinished units of input.
    Tokenize(TokenizeArgs),
    /// Duplicate detection in stages: MinHash (datatrove-compatible), SimHash or exact, and line counts for line-level dedup.
    Dedup {
        #[command(subcommand)]
        command: DedupCommand,
    },
    /// Train a model on token shards (runs curate-train, which links libtorch; see `curate train --help`).
    #[command(disable_help_flag = true)]
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Sample text from a checkpoint or a Hugging Face model folder (runs curate-train; see `curate generate --help`).
    #[command(disable_help_flag = true)]
    Generate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Score a checkpoint or Hugging Face model: perplexity, multiple choice, exact match (runs curate-train; see `curate eval --help`).
    #[command(disable_help_flag = true)]
    Eval {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Write a checkpoint as a Hugging Face model folder (runs curate-train; see `curate export --help`).
    #[command(disable_help_flag = true)]
    Export {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let code = match dispatch(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("curate: error: {e}");
            exit_code(e.class())
        }
    };
    // A Slurm task's log ends with what its --time and --mem must cover.
    if std::env::var_os("SLURM_JOB_ID").is_some() {
        let peak = curate::runtime::memory::peak_rss_bytes().unwrap_or(0);
        eprintln!("curate: {:.1} s, peak memory {:.1} MB", started.elapsed().as_secs_f64(), peak as f64 / 1e6);
    }
    code
}

/// The one mapping from an error's class to the exit code (clap's own
/// errors, for flags it refuses, exit 2 as well).
fn exit_code(class: ErrorClass) -> ExitCode {
    match class {
        ErrorClass::Usage => ExitCode::from(2),
        ErrorClass::Failed => ExitCode::from(1),
    }
}

fn dispatch(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Run { pipeline, input, output, rank, world_size, threads, progress } => {
            run(pipeline, input, output, rank, world_size, threads, progress)
        }
        Command::Check { pipeline } => {
            let p = Pipeline::load(&pipeline)?;
            // The tokenizer is small and the run stops on it: checked here too.
            if let Some(config) = &p.tokenize {
                curate::tokenize::encode::check_tokenizer(config)
                    .map_err(|source| Error::PipelineTokenizer { file: pipeline.clone(), source })?;
            }
            println!("{}", serde_json::to_string_pretty(&p).expect("serialisable"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { output, world_size } => stats(output, world_size),
        Command::Select(args) => select(args),
        Command::Slurm(args) => cli::slurm::slurm(args),
        Command::Status(args) => cli::slurm::status(args),
        Command::Report(args) => report(args),
        Command::Mix(args) => mix(args),
        Command::Tokenizer { command: TokenizerCommand::Train(args) } => train_tokenizer(args),
        Command::Bench(args) => bench(args),
        Command::Lm { command: LmCommand::Train(args) } => train_lm(args),
        Command::Classifier { command } => cli::classifier::classifier(command),
        Command::Decont { command } => cli::decont::decont(command),
        Command::Tokenize(args) => tokenize(args),
        Command::Dedup { command } => dedup(command),
        Command::Words => Ok(print_words()),
        Command::Minhash => Ok(print_minhash()),
        Command::FasttextPredict { model } => Ok(cli::inspect::print_fasttext(&model)),
        Command::Train { args } => cli::trainer::exec("train", args),
        Command::Generate { args } => cli::trainer::exec("generate", args),
        Command::Export { args } => cli::trainer::exec("export", args),
        Command::Eval { args } => cli::trainer::exec("eval", args),
        Command::Steps => {
            for t in STEP_TYPES {
                println!("{:<14} {}", t.name, t.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
