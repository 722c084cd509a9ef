//! `curate tokenizer train` and `curate tokenize`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use curate::io::doc::FieldNames;
use curate::runtime::progress::ProgressMode;
use curate::tokenize::encode::TokenizeOptions;
use curate::tokenize::{TokenFormat, TokenizeConfig, TrainOn};

use super::remote::{stage_file_if_remote, stage_if_remote};
use super::{fraction, named, print_errors, usage, Error, InputArgs};

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
    #[arg(long = "format", value_parser = named::<TokenFormat>(), value_delimiter = ',', default_values = ["parquet", "megatron"])]
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
    /// Records are conversations (`messages`, or `prompt` and `completion`):
    /// render them with the chat template and write a loss mask.
    #[arg(long)]
    pub chat: bool,
    /// A Jinja chat template (default: the one in the tokenizer_config.json beside --tokenizer).
    #[arg(long, requires = "chat")]
    pub chat_template: Option<String>,
    /// With --chat: train on the assistant turns, the last one only (completion), or every token (all).
    #[arg(long, value_parser = named::<TrainOn>(), default_value = "assistant", requires = "chat")]
    pub train_on: TrainOn,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
    pub progress: ProgressMode,
}

pub fn train_tokenizer(args: TrainArgs) -> Result<ExitCode, Error> {
    fraction(args.sample_fraction, "--sample-fraction")?;
    let threads = args.input.threads()?;
    let plan = curate::io::plan::plan(&args.input.input, None, u64::MAX)?;
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
    let names = FieldNames { text: args.input.text_field, id: args.input.id_field, raw_text: false };
    let pool = curate::runtime::pool::pool(threads)?;
    let (output, staged) = stage_file_if_remote(&args.output, "tokenizer-train")?;
    let report = pool.install(|| curate::tokenize::train::train(&plan, names, &options, &output))?;
    if let Some(staged) = staged {
        staged.finish()?;
    }
    eprintln!(
        "curate: trained a vocabulary of {} on {} documents ({} bad records skipped); wrote {}",
        report.vocab_size,
        report.docs,
        report.errors.docs,
        args.output.display()
    );
    print_errors(&report.errors.kinds);
    Ok(ExitCode::SUCCESS)
}

pub fn tokenize(args: TokenizeArgs) -> Result<ExitCode, Error> {
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
        chat: args.chat,
        chat_template: args.chat_template,
        train_on: args.train_on,
    };
    if let Err(e) = config.validate() {
        let flag = e.key.trim_start_matches("tokenize.").replace('_', "-");
        return Err(usage(format!("--{flag}: {}", e.message)));
    }
    let (output, staged) = stage_if_remote(&args.output.to_string_lossy(), "tokenize", None)?;
    let options = TokenizeOptions {
        config,
        threads: args.input.threads()?,
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field, raw_text: false },
        output: PathBuf::from(output),
        batch_size: args.batch_size.max(1),
        progress: args.progress,
    };
    let code = run_tokenize(&options, &args.output)?;
    if let Some(staged) = staged {
        staged.finish()?;
    }
    Ok(code)
}

/// Tokenizes as `options` say; messages name the output `shown` (an
/// object store address where `options.output` is its staging folder).
pub fn run_tokenize(options: &TokenizeOptions, shown: &Path) -> Result<ExitCode, Error> {
    let report = curate::tokenize::encode::tokenize(options)?;
    for ignored in &report.ignored {
        eprintln!("curate: {ignored}");
    }
    let s = &report.stats;
    if report.already_done {
        eprintln!("curate: tokens already complete in {}; nothing to do", shown.display());
    }
    eprintln!(
        "curate: {} tokens in {} documents ({} skipped as empty, {} errors), {:.2} characters per token",
        s.tokens, s.written_docs, s.skipped_empty_docs, s.errors.docs, s.chars_per_token
    );
    if options.config.chat {
        eprintln!(
            "curate: chat: {} of the tokens trained on ({:.1}%), {} conversations with nothing to train on skipped",
            s.trained_tokens,
            100.0 * s.trained_tokens as f64 / s.tokens.max(1) as f64,
            s.skipped_untrained_docs
        );
    }
    print_errors(&s.errors.kinds);
    eprintln!("curate: {} shards; manifest in {}", report.manifest.shards.len(), shown.join("manifest.json").display());
    Ok(ExitCode::SUCCESS)
}
