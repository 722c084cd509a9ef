//! `curate-train`: what `curate train` and `curate generate` run.
//!
//! A binary of its own so that the curation binary never links libtorch:
//! `curate train ...` executes this program, found beside `curate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use curate_trainer::distributed::{environment::Launch, launcher};
use curate_trainer::pretrained::{self, export};
use curate_trainer::{config::TrainConfig, eval, generate, gradients, model, train};

#[derive(Parser)]
#[command(name = "curate", bin_name = "curate", about = "curate's trainer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on curated token shards, as `train.toml` describes.
    Train {
        config: PathBuf,
        /// Where metrics.jsonl and checkpoints/ go (default: training.output_dir).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Continue from the output's latest checkpoint.
        #[arg(long)]
        resume: bool,
        /// Token shards to train on (overrides data.path).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Start this many local ranks (data parallel), as
        /// `torchrun --standalone --nproc-per-node N` would.
        #[arg(long, value_name = "N")]
        nproc_per_node: Option<usize>,
    },
    /// Sample text from a checkpoint or a Hugging Face model folder.
    Generate {
        /// A checkpoint folder (OUTPUT/checkpoints/step-N), a run's output
        /// folder for its latest checkpoint, or a Hugging Face model folder.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The tokenizer.json the data was tokenized with (default: the
        /// model folder's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long, default_value = "")]
        prompt: String,
        #[arg(long, default_value_t = 100)]
        max_new_tokens: usize,
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        #[arg(long, default_value_t = 50)]
        top_k: usize,
        #[arg(long, default_value_t = 0.95)]
        top_p: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Write a checkpoint as a Hugging Face folder (config.json, safetensors,
    /// tokenizer files) that transformers, vLLM and lm-evaluation-harness load.
    Export {
        /// A checkpoint folder, a run's output folder (its latest
        /// checkpoint) or a Hugging Face model folder.
        checkpoint: PathBuf,
        /// The folder to write; must not exist or be empty.
        #[arg(long)]
        output: PathBuf,
        /// A tokenizer.json, or a Hugging Face folder holding one with its
        /// tokenizer_config.json (default: the checkpoint folder's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// A Jinja chat template to ship in tokenizer_config.json.
        #[arg(long)]
        chat_template: Option<PathBuf>,
        /// float32, bfloat16 or float16.
        #[arg(long, default_value = "float32")]
        dtype: String,
        /// Split the weights into shards of at most this size, as
        /// save_pretrained's max_shard_size ("5GB", "200MB", "100KB").
        #[arg(long, default_value = "5GB")]
        max_shard_size: String,
        /// A LoRA checkpoint: fold the adapters into the weights and write the
        /// whole model (without it, the adapter is written in PEFT's format).
        #[arg(long)]
        merge: bool,
    },
    /// Score a checkpoint or a Hugging Face model folder: perplexity,
    /// multiple-choice accuracy (acc, acc_norm) and greedy exact match.
    Eval {
        /// A checkpoint folder, a run's output folder or a Hugging Face model folder.
        model: PathBuf,
        /// Token shards (a folder with manifest.json) or JSON Lines of {"text"}; repeatable.
        #[arg(long)]
        perplexity: Vec<PathBuf>,
        /// JSON Lines of {"context", "choices", "gold"}; repeatable.
        #[arg(long)]
        choice: Vec<PathBuf>,
        /// JSON Lines of {"prompt", "answer"}, scored by greedy generation; repeatable.
        #[arg(long)]
        generate: Vec<PathBuf>,
        /// The tokenizer.json (default: the model folder's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Longest sequence given to the model (default: its max_position_embeddings).
        #[arg(long)]
        max_length: Option<usize>,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// Generation stops at the first of these strings (repeatable).
        #[arg(long, default_values = ["\n"])]
        until: Vec<String>,
        /// Where to write the results as JSON.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// One batch's loss and gradients, with the weights, for parity checks.
    #[command(hide = true)]
    Gradients {
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rank = None;
    let result = match cli.command {
        Command::Train { config, nproc_per_node: Some(n), .. } if n > 1 => {
            return launch(&config, n);
        }
        Command::Train { config, output, resume, data, .. } => load(&config).and_then(|mut config| {
            if let Some(data) = data {
                config.data.path = data;
            }
            let launch = Launch::from_env()?;
            rank = launch.as_ref().filter(|l| l.world > 1).map(|l| l.rank);
            let summary = train::train(config, &train::Options { output, resume, launch })?;
            if rank.unwrap_or(0) == 0 {
                eprintln!(
                    "trained {} steps ({} skipped); last loss {:.4}; checkpoint {}",
                    summary.steps,
                    summary.skipped_steps,
                    summary.last_loss,
                    summary.checkpoint.display()
                );
            }
            Ok(())
        }),
        Command::Generate {
            checkpoint,
            tokenizer,
            prompt,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            device,
        } => run_generate(
            checkpoint,
            tokenizer,
            prompt,
            generate::Sampling { temperature, top_k, top_p, max_new_tokens, seed },
            &device,
        ),
        Command::Export { checkpoint, output, tokenizer, chat_template, dtype, max_shard_size, merge } => {
            run_export(checkpoint, output, tokenizer, chat_template, &dtype, &max_shard_size, merge)
        }
        Command::Eval {
            model,
            perplexity,
            choice,
            generate,
            tokenizer,
            max_length,
            max_new_tokens,
            until,
            output,
            device,
        } => {
            let tasks = eval::Tasks { perplexity, choice, generation: generate, max_new_tokens, until };
            run_eval(&model, tokenizer, max_length, &tasks, output, &device)
        }
        Command::Gradients { config, out } => load(&config).and_then(|config| {
            let loss = gradients::dump(config, &out)?;
            println!("{loss}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed collective names its rank itself; the rest get it here.
            let named = e.chain().any(|c| c.is::<curate_trainer::distributed::group::DistError>());
            match rank {
                Some(r) if !named => eprintln!("error: rank {r}: {e:#}"),
                _ => eprintln!("error: {e:#}"),
            }
            // 2 for what the user can fix before starting, as curate does.
            if e.downcast_ref::<curate_trainer::config::ConfigError>().is_some()
                || e.downcast_ref::<curate_trainer::config::Invalid>().is_some()
                || e.downcast_ref::<curate_trainer::distributed::environment::EnvError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `--nproc-per-node N`: N ranks of this same command, on this machine.
fn launch(config: &std::path::Path, n: usize) -> ExitCode {
    let timeout = load(config).map(|c| c.distributed.timeout_s);
    let timeout = match timeout {
        Ok(t) => std::time::Duration::from_secs_f64(t),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match Launch::from_env() {
        Ok(Some(l)) => {
            eprintln!("error: --nproc-per-node: this process is already rank {} of {} ({})", l.rank, l.world, l.source);
            return ExitCode::from(2);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    match launcher::run(n, &launcher::rank_args(), timeout) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<TrainConfig> {
    Ok(TrainConfig::load(path)?)
}

/// The tokenizer given, else the model folder's own.
fn model_tokenizer(asked: Option<PathBuf>, loaded: &pretrained::Loaded) -> anyhow::Result<tokenizers::Tokenizer> {
    let path = match asked {
        Some(t) => t,
        None if loaded.dir.join("tokenizer.json").is_file() => loaded.dir.join("tokenizer.json"),
        None => anyhow::bail!(
            "{}: has no tokenizer.json; pass --tokenizer with the one the data was tokenized with",
            loaded.dir.display()
        ),
    };
    tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: not a tokenizer.json: {e}", path.display()))
}

fn run_eval(
    model_path: &std::path::Path,
    tokenizer: Option<PathBuf>,
    max_length: Option<usize>,
    tasks: &eval::Tasks,
    output: Option<PathBuf>,
    device: &str,
) -> anyhow::Result<()> {
    if tasks.perplexity.is_empty() && tasks.choice.is_empty() && tasks.generation.is_empty() {
        anyhow::bail!("no task: pass --perplexity, --choice or --generate");
    }
    let device = model::device_of(device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let loaded = pretrained::load(model_path, device)?;
    let tokenizer = model_tokenizer(tokenizer, &loaded)?;
    let positions = loaded.config.max_position_embeddings;
    let max_length = max_length.unwrap_or(positions);
    if max_length < 2 || max_length > positions {
        anyhow::bail!("--max-length: {max_length} is not between 2 and the model's {positions} positions");
    }
    let evaluator = eval::Evaluator { loaded: &loaded, tokenizer: &tokenizer, device, max_length };
    let results = eval::run(&evaluator, tasks)?;
    print!("{}", eval::table(&results));
    if let Some(path) = output {
        curate_trainer::checkpoint::write_json(&path, &eval::results_json(&loaded.dir, &results))?;
        eprintln!("results in {}", path.display());
    }
    Ok(())
}

fn run_generate(
    checkpoint: PathBuf,
    tokenizer: Option<PathBuf>,
    prompt: String,
    sampling: generate::Sampling,
    device: &str,
) -> anyhow::Result<()> {
    let device = model::device_of(device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let loaded = pretrained::load(&checkpoint, device)?;
    let tok = model_tokenizer(tokenizer, &loaded)?;
    let mut ids: Vec<i64> = tok
        .encode(prompt.as_str(), false)
        .map_err(|e| anyhow::anyhow!("encoding the prompt: {e}"))?
        .get_ids()
        .iter()
        .map(|&i| i64::from(i))
        .collect();
    if ids.is_empty() {
        // An empty prompt starts a new document, as training data does after end-of-text.
        let start = loaded.bos_id.or(loaded.eos_ids.first().copied());
        ids.push(i64::from(
            start.ok_or_else(|| anyhow::anyhow!("an empty prompt needs a start or end-of-text token"))?,
        ));
    }
    let new = generate::generate(&loaded, &ids, &sampling, true, device)?;
    let new_u32: Vec<u32> = new.iter().map(|&i| i as u32).collect();
    let text = tok.decode(&new_u32, true).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
    println!("{prompt}{text}");
    Ok(())
}

fn run_export(
    checkpoint: PathBuf,
    output: PathBuf,
    tokenizer: Option<PathBuf>,
    chat_template: Option<PathBuf>,
    dtype: &str,
    max_shard_size: &str,
    merge: bool,
) -> anyhow::Result<()> {
    let options = export::Options {
        output,
        tokenizer,
        chat_template,
        dtype: export::dtype_of(dtype)?,
        max_shard_bytes: export::size_of(max_shard_size)?,
        merge,
    };
    let summary = export::export(&checkpoint, &options)?;
    eprintln!(
        "exported {} ({} parameters, {dtype}) to {}: {}",
        summary.source.display(),
        summary.parameters,
        options.output.display(),
        summary.files.join(", ")
    );
    Ok(())
}
