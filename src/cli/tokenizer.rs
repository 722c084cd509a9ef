//! `curate tokenizer train` and `curate tokenize`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use curate::config::{TokenFormat, TokenizeConfig};
use curate::doc::FieldNames;
use curate::engine::progress::ProgressMode;
use curate::tokenize::encode::TokenizeOptions;

use super::{fatal, fraction, print_errors, thread_count, InputArgs};

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer (GPT-2 style) and write tokenizer.json.
    Train(TrainArgs),
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write tokenizer.json.
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 32000)]
    pub vocab_size: usize,
    /// Merges of pairs seen fewer times than this are not learned.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// A special token (repeat for several); default: <|endoftext|> <|pad|> <|system|> <|user|> <|assistant|>.
    #[arg(long = "special-token")]
    pub special_tokens: Vec<String>,
    /// Train on this fraction of documents, chosen by a hash of their id.
    #[arg(long, default_value_t = 1.0)]
    pub sample_fraction: f64,
    /// Train on at most this many documents.
    #[arg(long)]
    pub max_docs: Option<u64>,
    /// Skip GPT-2's pre-tokenisation regex (byte-level mapping only).
    #[arg(long)]
    pub no_regex: bool,
}

#[derive(clap::Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A tokenizer.json (from `curate tokenizer train` or any Hugging Face tokenizer).
    #[arg(long)]
    pub tokenizer: String,
    /// Output folder for shards, manifest.json and stats.json.
    #[arg(long)]
    pub output: PathBuf,
    /// Output formats (repeat or comma-separate).
    #[arg(long = "format", value_enum, value_delimiter = ',', default_values = ["parquet", "megatron"])]
    pub formats: Vec<TokenFormat>,
    /// Start a new shard once this many tokens are written to the current one.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub shard_tokens: u64,
    /// Shuffle documents deterministically with this seed (default: input order).
    #[arg(long)]
    pub shuffle_seed: Option<u64>,
    /// Hold out this fraction of documents, chosen by a hash of their id, as the validation split.
    #[arg(long, default_value_t = 0.0)]
    pub validation_fraction: f64,
    /// Token appended to every document.
    #[arg(long, default_value = "<|endoftext|>")]
    pub eos_token: String,
    /// Do not append an end-of-text token.
    #[arg(long)]
    pub no_eos: bool,
    /// Token put before every document (default: none).
    #[arg(long)]
    pub bos_token: Option<String>,
    /// A field to carry into the Parquet shards as a string column (repeat for several).
    #[arg(long = "metadata")]
    pub metadata: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

pub fn train_tokenizer(args: TrainArgs) -> ExitCode {
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

pub fn tokenize(args: TokenizeArgs) -> ExitCode {
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

pub fn run_tokenize(options: &TokenizeOptions) -> ExitCode {
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
