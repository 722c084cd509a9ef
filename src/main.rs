//! The `curate` command line.
//!
//! Exit codes: 0 when the run completed (bad documents skipped under
//! `on_error = "skip"` are counted in stats.json, not failures); 1 when the
//! run stopped on a bad document (`on_error = "fail"`) or could not write;
//! 2 for a bad pipeline file, bad flags or unusable input.

use std::path::PathBuf;
use std::process::ExitCode;

mod trainer_command;

use clap::{Parser, Subcommand};

use curate::config::Pipeline;
use curate::config::{TokenFormat, TokenizeConfig};
use curate::doc::FieldNames;
use curate::engine::executor::{self, RunError, RunOptions};
use curate::engine::progress::ProgressMode;
use curate::engine::registry::STEP_TYPES;
use curate::engine::state::RunDir;
use curate::engine::stats::{Occurrences, Stats};
use curate::engine::task::Task;
use curate::tokenize::encode::TokenizeOptions;

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
        #[arg(long, value_enum, default_value = "auto")]
        progress: ProgressMode,
    },
    /// Check a pipeline file and print it with its defaults filled in; reads no data.
    Check { pipeline: PathBuf },
    /// Sum the per-task stats of a multi-task run into OUTPUT/stats.json.
    Stats {
        /// The run's output folder.
        output: PathBuf,
        /// The run's number of tasks (default: the one found in OUTPUT/stats/).
        #[arg(long)]
        world_size: Option<usize>,
    },
    /// List the step types a pipeline can use.
    Steps,
    /// Measure filter throughput: each step alone and the whole pipeline, on one core and on all cores.
    Bench(BenchArgs),
    /// Print the English words of each input line's text, as the quality filters split them (one JSON array per line).
    #[command(hide = true)]
    Words,
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
    /// Train a model on token shards (runs curate-train, which links libtorch; see `curate train --help`).
    #[command(disable_help_flag = true)]
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Sample text from a training checkpoint (runs curate-train; see `curate generate --help`).
    #[command(disable_help_flag = true)]
    Generate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A file, folder or glob of JSON Lines or Parquet documents.
    input: String,
    /// Measure the steps of this pipeline file (default: the quality filters with their defaults).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// At most this many documents are read into memory.
    #[arg(long, default_value_t = 100_000)]
    max_docs: usize,
    /// At most this many megabytes of text are read into memory.
    #[arg(long, default_value_t = 200)]
    max_mb: usize,
    /// Threads for the all-cores rows (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum LmCommand {
    /// Estimate a modified Kneser-Ney n-gram model from documents (one sentence a line) and write it as ARPA.
    Train(LmTrainArgs),
}

#[derive(clap::Args)]
struct LmTrainArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write the model (ARPA text).
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 3)]
    order: usize,
    /// Lowercase the text first (then set `lowercase = true` on the perplexity step too).
    #[arg(long)]
    lowercase: bool,
}

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer (GPT-2 style) and write tokenizer.json.
    Train(TrainArgs),
}

#[derive(clap::Args)]
struct InputArgs {
    /// A file, folder or glob of JSON Lines or Parquet (e.g. curated shards).
    #[arg(long)]
    input: String,
    #[arg(long, default_value = "text")]
    text_field: String,
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write tokenizer.json.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 32000)]
    vocab_size: usize,
    /// Merges of pairs seen fewer times than this are not learned.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// A special token (repeat for several); default: <|endoftext|> <|pad|> <|system|> <|user|> <|assistant|>.
    #[arg(long = "special-token")]
    special_tokens: Vec<String>,
    /// Train on this fraction of documents, chosen by a hash of their id.
    #[arg(long, default_value_t = 1.0)]
    sample_fraction: f64,
    /// Train on at most this many documents.
    #[arg(long)]
    max_docs: Option<u64>,
    /// Skip GPT-2's pre-tokenisation regex (byte-level mapping only).
    #[arg(long)]
    no_regex: bool,
}

#[derive(clap::Args)]
struct TokenizeArgs {
    #[command(flatten)]
    input: InputArgs,
    /// A tokenizer.json (from `curate tokenizer train` or any Hugging Face tokenizer).
    #[arg(long)]
    tokenizer: String,
    /// Output folder for shards, manifest.json and stats.json.
    #[arg(long)]
    output: PathBuf,
    /// Output formats (repeat or comma-separate).
    #[arg(long = "format", value_enum, value_delimiter = ',', default_values = ["parquet", "megatron"])]
    formats: Vec<TokenFormat>,
    /// Start a new shard once this many tokens are written to the current one.
    #[arg(long, default_value_t = 1_000_000_000)]
    shard_tokens: u64,
    /// Shuffle documents deterministically with this seed (default: input order).
    #[arg(long)]
    shuffle_seed: Option<u64>,
    /// Hold out this fraction of documents, chosen by a hash of their id, as the validation split.
    #[arg(long, default_value_t = 0.0)]
    validation_fraction: f64,
    /// Token appended to every document.
    #[arg(long, default_value = "<|endoftext|>")]
    eos_token: String,
    /// Do not append an end-of-text token.
    #[arg(long)]
    no_eos: bool,
    /// Token put before every document (default: none).
    #[arg(long)]
    bos_token: Option<String>,
    /// A field to carry into the Parquet shards as a string column (repeat for several).
    #[arg(long = "metadata")]
    metadata: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { pipeline, input, output, rank, world_size, threads, progress } => {
            run(pipeline, input, output, rank, world_size, threads, progress)
        }
        Command::Check { pipeline } => match Pipeline::load(&pipeline) {
            Ok(p) => {
                println!("{}", serde_json::to_string_pretty(&p).expect("serialisable"));
                ExitCode::SUCCESS
            }
            Err(e) => fatal(e),
        },
        Command::Stats { output, world_size } => stats(output, world_size),
        Command::Tokenizer { command: TokenizerCommand::Train(args) } => train_tokenizer(args),
        Command::Bench(args) => bench(args),
        Command::Lm { command: LmCommand::Train(args) } => train_lm(args),
        Command::Tokenize(args) => tokenize(args),
        Command::Words => print_words(),
        Command::Train { args } => trainer_command::exec("train", args),
        Command::Generate { args } => trainer_command::exec("generate", args),
        Command::Steps => {
            for t in STEP_TYPES {
                println!("{:<14} {}", t.name, t.summary);
            }
            ExitCode::SUCCESS
        }
    }
}

/// `curate words`: each stdin line's `text`, split into English words.
fn print_words() -> ExitCode {
    use std::io::{BufRead, Write};
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return fatal("stdin is not UTF-8 text") };
        let text: String = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str().map(str::to_owned)))
            .unwrap_or_default();
        let words = curate_filters::words::split_into_words(&text);
        if writeln!(out, "{}", serde_json::to_string(&words).expect("serialisable")).is_err() {
            // A closed pipe (`| head`) is not an error.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

fn fatal(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("curate: error: {e}");
    ExitCode::from(2)
}

fn run(
    path: PathBuf,
    input: Option<String>,
    output: Option<String>,
    rank: Option<usize>,
    world_size: Option<usize>,
    threads: Option<usize>,
    progress: ProgressMode,
) -> ExitCode {
    let mut pipeline = match Pipeline::load(&path) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    if let Some(input) = input {
        pipeline.input.path = input;
    }
    if let Some(output) = output {
        pipeline.output.path = output;
    }
    if let Err((key, message)) = pipeline.validate() {
        return fatal(format!("{key}: {message}"));
    }
    if let Some(config) = &pipeline.tokenize {
        if let Err(e) = curate::tokenize::encode::check_tokenizer(config) {
            return fatal(format!("{}: tokenize: {e}", path.display()));
        }
    }
    let task = match Task::resolve(rank, world_size, |k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => return fatal(e),
    };
    let threads = threads.or(pipeline.run.threads);
    if threads == Some(0) {
        return fatal("--threads must be at least 1");
    }
    let threads = thread_count(threads);
    let options = RunOptions { task, threads, progress };
    match executor::run(&pipeline, &options) {
        Ok(report) => {
            for path in &report.ignored_files {
                eprintln!("curate: ignored {} (not an input format)", path.display());
            }
            let who = if task.world > 1 { format!("task {} of {}: ", task.rank, task.world) } else { String::new() };
            if report.already_done {
                eprintln!("curate: {who}already complete in {}; nothing to do", pipeline.output.path);
            }
            summarise(&who, &report.task);
            match &report.merged {
                Some((_, path)) => eprintln!("curate: stats in {}", path.display()),
                None => {
                    eprintln!(
                        "curate: {who}done; stats.json is written when the last task finishes (or by `curate stats`)"
                    );
                    return ExitCode::SUCCESS;
                }
            }
            // The task that completes the run tokenizes its output.
            match pipeline.tokenize {
                Some(config) => {
                    let out = PathBuf::from(&pipeline.output.path);
                    let options = TokenizeOptions {
                        output: config.path.as_ref().map_or_else(|| out.join("tokens"), PathBuf::from),
                        config,
                        input: pipeline.output.path.clone(),
                        names: FieldNames {
                            text: pipeline.input.text_field.clone(),
                            id: pipeline.input.id_field.clone(),
                        },
                        threads,
                        batch_size: pipeline.input.batch_size,
                        progress,
                    };
                    run_tokenize(&options)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e @ (RunError::BadDocument { .. } | RunError::Write { .. } | RunError::Accounting(_))) => {
            eprintln!("curate: error: {e}");
            ExitCode::from(1)
        }
        Err(e) => fatal(e),
    }
}

fn summarise(who: &str, s: &Stats) {
    eprintln!(
        "curate: {who}kept {} of {} documents ({} dropped, {} errors)",
        s.kept_docs, s.input_docs, s.dropped_docs, s.error_docs
    );
    print_errors(&s.errors);
}

/// One line per error kind: how many, and where the first one was.
fn print_errors(errors: &std::collections::BTreeMap<String, Occurrences>) {
    for (kind, occ) in errors {
        eprintln!("curate:   {} {kind}, first at {}", occ.count, occ.examples.first().map_or("?", String::as_str));
    }
}

fn stats(output: PathBuf, world_size: Option<usize>) -> ExitCode {
    if !output.join(".curate").is_dir() {
        return fatal(format!("{} is not the output folder of a curate run", output.display()));
    }
    let run_dir = match RunDir::open(&output) {
        Ok(d) => d,
        Err(e) => return fatal(e),
    };
    let world = match (world_size, run_dir.world_sizes().as_slice()) {
        (Some(w), _) => w,
        (None, [w]) => *w,
        (None, []) => return fatal(format!("no task has finished in {}", output.display())),
        (None, many) => {
            return fatal(format!(
                "tasks of several world sizes ({many:?}) finished in {}; pass --world-size",
                output.display()
            ))
        }
    };
    match run_dir.merged(world) {
        Ok(stats) => {
            if let Err(e) = stats.check() {
                return fatal(format!("stats do not add up: {e}"));
            }
            match run_dir.write_stats(&stats, Task { rank: 0, world }) {
                Ok(path) => {
                    summarise("", &stats);
                    eprintln!("curate: stats in {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fatal(e),
            }
        }
        Err(missing) => {
            eprintln!("curate: error: {} of {world} tasks have not finished: ranks {missing:?}", missing.len());
            ExitCode::from(1)
        }
    }
}

/// The given number of threads, or one per core.
fn thread_count(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

fn fraction(value: f64, flag: &str) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag} must be between 0 and 1, not {value}"))
    }
}

fn train_tokenizer(args: TrainArgs) -> ExitCode {
    if let Err(e) = fraction(args.sample_fraction, "--sample-fraction") {
        return fatal(e);
    }
    let plan = match curate::io::plan::plan(&args.input.input, None, u64::MAX) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    let special_tokens = if args.special_tokens.is_empty() {
        curate::tokenize::train::DEFAULT_SPECIAL_TOKENS.iter().map(|t| t.to_string()).collect()
    } else {
        args.special_tokens
    };
    let options = curate::tokenize::train::TrainOptions {
        vocab_size: args.vocab_size,
        min_frequency: args.min_frequency,
        special_tokens,
        sample_fraction: args.sample_fraction,
        max_docs: args.max_docs,
        use_regex: !args.no_regex,
    };
    let names = FieldNames { text: args.input.text_field, id: args.input.id_field };
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(thread_count(args.input.threads)).build().expect("a thread pool");
    match pool.install(|| curate::tokenize::train::train(&plan, names, &options, &args.output)) {
        Ok(report) => {
            eprintln!(
                "curate: trained a vocabulary of {} on {} documents ({} bad records skipped); wrote {}",
                report.vocab_size,
                report.docs,
                report.error_docs,
                args.output.display()
            );
            print_errors(&report.errors);
            ExitCode::SUCCESS
        }
        Err(e) => fatal(e),
    }
}

fn tokenize(args: TokenizeArgs) -> ExitCode {
    let config = TokenizeConfig {
        tokenizer: args.tokenizer,
        path: None,
        formats: args.formats,
        shard_tokens: args.shard_tokens,
        shuffle_seed: args.shuffle_seed,
        validation_fraction: args.validation_fraction,
        eos: !args.no_eos,
        eos_token: args.eos_token,
        bos_token: args.bos_token,
        metadata: args.metadata,
    };
    if let Err((key, message)) = config.validate() {
        let flag = key.trim_start_matches("tokenize.").replace('_', "-");
        return fatal(format!("--{flag}: {message}"));
    }
    let options = TokenizeOptions {
        config,
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field },
        output: args.output,
        threads: thread_count(args.input.threads),
        batch_size: args.batch_size.max(1),
        progress: args.progress,
    };
    run_tokenize(&options)
}

fn run_tokenize(options: &TokenizeOptions) -> ExitCode {
    match curate::tokenize::encode::tokenize(options) {
        Ok(report) => {
            let s = &report.stats;
            if report.already_done {
                eprintln!("curate: tokens already complete in {}; nothing to do", options.output.display());
            }
            eprintln!(
                "curate: {} tokens in {} documents ({} skipped as empty, {} errors), {:.2} characters per token",
                s.tokens, s.written_docs, s.skipped_empty_docs, s.error_docs, s.chars_per_token
            );
            print_errors(&s.errors);
            eprintln!(
                "curate: {} shards; manifest in {}",
                report.manifest.shards.len(),
                options.output.join("manifest.json").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fatal(e),
    }
}

fn bench(args: BenchArgs) -> ExitCode {
    let specs = match &args.pipeline {
        Some(path) => match Pipeline::load(path) {
            Ok(p) => p.steps,
            Err(e) => return fatal(e),
        },
        None => {
            let text =
                curate::bench::DEFAULT_STEPS.iter().map(|t| format!("[[step]]\ntype = \"{t}\"\n")).collect::<String>();
            let toml = format!("[input]\npath = \"-\"\n[output]\npath = \"-\"\n{text}");
            Pipeline::parse(&toml, "(default steps)").expect("the default steps are valid").steps
        }
    };
    if specs.is_empty() {
        return fatal("the pipeline has no steps to measure");
    }
    let plan = match curate::io::plan::plan(&args.input, None, u64::MAX) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    let names = FieldNames { text: args.text_field, id: "id".into() };
    let docs = curate::bench::load(&plan, names, args.max_docs, args.max_mb << 20);
    if docs.is_empty() {
        return fatal(format!("no documents in {}", args.input));
    }
    match curate::bench::bench(&specs, &docs, thread_count(args.threads)) {
        Ok(rows) if args.json => {
            println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(rows) => {
            let mb: usize = docs.iter().map(|d| d.text.len()).sum();
            println!("{} documents, {:.1} MB of text\n", docs.len(), mb as f64 / 1e6);
            print!("{}", curate::bench::table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => fatal(e),
    }
}

fn train_lm(args: LmTrainArgs) -> ExitCode {
    let mut model = match curate_filters::KneserNey::new(args.order) {
        Ok(m) => m,
        Err(e) => return fatal(format!("--order: {e}")),
    };
    let plan = match curate::io::plan::plan(&args.input.input, None, u64::MAX) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    let names = FieldNames { text: args.input.text_field, id: args.input.id_field };
    let read = std::sync::Arc::new(curate::io::read::ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
    let mut batches = curate::io::docs::UnitBatches::new(&plan, (0..plan.units.len()).collect(), read);
    let (mut docs, mut sentences) = (0u64, 0u64);
    while let Some((_, batch)) = batches.next_batch() {
        for doc in batch {
            docs += 1;
            let text = if args.lowercase { doc.text.to_lowercase() } else { doc.text };
            for line in text.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if !words.is_empty() {
                    model.add_sentence(&words);
                    sentences += 1;
                }
            }
        }
    }
    let arpa = match model.arpa() {
        Ok(a) => a,
        Err(e) => return fatal(e),
    };
    if let Err(e) = curate::io::atomic::write(&args.output, arpa.as_bytes()) {
        return fatal(format!("cannot write {}: {e}", args.output.display()));
    }
    eprintln!(
        "curate: a {}-gram model of {sentences} sentences from {docs} documents ({} bad records skipped); wrote {}",
        args.order,
        batches.error_docs,
        args.output.display()
    );
    print_errors(&batches.errors);
    ExitCode::SUCCESS
}
