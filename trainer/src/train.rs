//! The training loop: micro-batches, gradient accumulation, clipping, the
//! NaN guard, the optimizer step, evaluation, metrics and checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use curate_shards::{Manifest, Split};
use tch::{nn, Device};

use crate::checkpoint::{self, DataFingerprint, TrainerState};
use crate::config::{NanPolicy, ShardFormat, TrainConfig};
use crate::data::{Sampler, TokenStream, Windows};
use crate::hooks;
use crate::model::{self, CausalLm};
use crate::optim::{self, AdamW};
use crate::precision::{LossScaler, Precision};
use crate::step;

/// A model and its data, ready to train or inspect.
pub struct Setup {
    pub config: TrainConfig,
    pub manifest: Manifest,
    pub device: Device,
    pub precision: Precision,
    pub vs: nn::VarStore,
    pub model: Box<dyn CausalLm>,
    pub train: Windows,
    pub validation: Option<Windows>,
}

impl Setup {
    /// Resolves the config against the data (vocabulary size, shard format),
    /// opens the shards and builds the model from `training.seed`.
    pub fn new(mut config: TrainConfig) -> anyhow::Result<Setup> {
        let manifest_path = config.data.path.join("manifest.json");
        let manifest = Manifest::load(&manifest_path)?;
        let vocab = manifest.tokenizer.vocab_size;
        match config.model.vocab_size {
            None => config.model.vocab_size = Some(vocab),
            Some(v) if v < vocab => {
                bail!("model.vocab_size: {v} is smaller than the tokenizer's {vocab} ({})", manifest_path.display())
            }
            Some(_) => {}
        }
        let has = |f: &str| manifest.formats.iter().any(|m| m == f);
        let format = match config.data.format {
            Some(f) => f,
            None if has("megatron") => ShardFormat::Megatron,
            None => ShardFormat::Parquet,
        };
        let format_name = if format == ShardFormat::Megatron { "megatron" } else { "parquet" };
        if !has(format_name) {
            bail!("data.format: {} holds {:?}, not {format_name}", manifest_path.display(), manifest.formats);
        }
        let seq_len = config.data.seq_len;
        let open = |split: Split| -> anyhow::Result<Windows> {
            let vocab_size = config.model.vocab_size.expect("resolved above") as u64;
            Ok(Windows::new(TokenStream::open(&config.data.path, &manifest, split, format, vocab_size)?, seq_len))
        };
        let train = open(Split::Train)?;
        if train.count() == 0 {
            bail!(
                "data.path: the train split of {} holds {} tokens, fewer than one window of seq_len + 1 = {}",
                manifest_path.display(),
                manifest.tokens(Split::Train),
                seq_len + 1
            );
        }
        let validation =
            if manifest.tokens(Split::Validation) > seq_len as u64 { Some(open(Split::Validation)?) } else { None };
        if config.training.eval_interval > 0 && validation.is_none() {
            bail!(
                "training.eval_interval: {} has no validation split of at least seq_len + 1 tokens \
                 (curate tokenize --validation-fraction makes one)",
                manifest_path.display()
            );
        }
        let device = model::device_of(&config.training.device).context("training.device")?;
        let precision = Precision::from_config(&config.training);
        if let Some(n) = config.training.threads {
            tch::set_num_threads(n as i32);
        }
        tch::manual_seed(config.training.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = model::build(&vs, &config.model);
        Ok(Setup { config, manifest, device, precision, vs, model, train, validation })
    }

    /// Trainable weights by Hugging Face name.
    pub fn weights(&self) -> Vec<(String, tch::Tensor)> {
        let mut w: Vec<_> = self.vs.variables().into_iter().collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    }
}

pub struct Options {
    /// Overrides `training.output_dir`.
    pub output: Option<PathBuf>,
    pub resume: bool,
}

pub struct Summary {
    pub steps: u64,
    pub skipped_steps: u64,
    pub last_loss: f64,
    pub checkpoint: PathBuf,
}

/// What one optimizer step did.
struct StepOutcome {
    loss: f64,
    grad_norm: f64,
    lr: f64,
    /// The update was skipped (fp16 overflow, or a non-finite loss under
    /// `nan_policy = "skip"`).
    skipped: bool,
}

pub fn train(config: TrainConfig, options: &Options) -> anyhow::Result<Summary> {
    let output = options.output.clone().unwrap_or_else(|| config.training.output_dir.clone());
    let existing = checkpoint::latest(&output)?;
    if existing.is_some() && !options.resume {
        bail!(
            "{}: holds checkpoints of an earlier run; pass --resume to continue it or choose another output",
            output.display()
        );
    }
    let setup = Setup::new(config)?;
    let t = setup.config.training.clone();
    std::fs::create_dir_all(&output).with_context(|| output.display().to_string())?;
    checkpoint::write_json(&output.join("train.json"), &setup.config)?;

    let mut optimizer = AdamW::new(setup.weights(), &t);
    let mut state = start_state(&setup, existing.as_deref(), &mut optimizer)?;
    let mut metrics = Metrics::open(&output.join("metrics.jsonl"), state.step)?;
    let tokens_per_step = (t.batch_size * t.gradient_accumulation_steps * setup.config.data.seq_len) as u64;
    let flops_per_token = 6.0 * model::flop_parameters(&setup.vs) as f64
        + 12.0 * (setup.config.model.num_layers * setup.config.model.hidden_size * setup.config.data.seq_len) as f64;
    let mut sampler =
        Sampler::new(setup.config.data.seed, setup.train.count(), t.batch_size, t.gradient_accumulation_steps, 0, 1);
    let progress = progress_bar(t.max_steps, state.step);
    let started = Instant::now();
    let mut last_loss = f64::NAN;
    let mut last_checkpoint = existing;

    while state.step < t.max_steps {
        let step_started = Instant::now();
        let outcome = train_step(&setup, &mut optimizer, &mut sampler, &mut state)?;
        state.step += 1;
        state.optimizer_step = optimizer.step;
        state.tokens_seen += tokens_per_step;
        last_loss = outcome.loss;
        let tokens_per_s = tokens_per_step as f64 / step_started.elapsed().as_secs_f64();
        let mfu = t.peak_tflops.map(|peak| flops_per_token * tokens_per_s / (peak * 1e12));
        metrics.write(&serde_json::json!({
            "step": state.step,
            "loss": outcome.loss,
            "lr": outcome.lr,
            "grad_norm": outcome.grad_norm,
            "skipped": outcome.skipped,
            "loss_scale": state.loss_scaler.map(|s| s.scale),
            "tokens": state.tokens_seen,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
            "elapsed_s": started.elapsed().as_secs_f64(),
        }))?;
        show_step(&progress, &t, state.step, &outcome, tokens_per_s);
        if t.eval_interval > 0 && (state.step.is_multiple_of(t.eval_interval) || state.step == t.max_steps) {
            evaluate(&setup, &mut metrics, &progress, state.step)?;
        }
        if (t.checkpoint_interval > 0 && state.step.is_multiple_of(t.checkpoint_interval)) || state.step == t.max_steps
        {
            last_checkpoint = Some(save(&output, &setup, &optimizer, &state)?);
        }
        hooks::step_done(state.step);
    }
    progress.finish_and_clear();
    let checkpoint = last_checkpoint.context("no step ran")?;
    Ok(Summary { steps: state.step, skipped_steps: state.skipped_steps, last_loss, checkpoint })
}

/// The state to start from: fresh, or the latest checkpoint's, whose data
/// order must be this config's.
fn start_state(setup: &Setup, existing: Option<&Path>, optimizer: &mut AdamW) -> anyhow::Result<TrainerState> {
    let t = &setup.config.training;
    let fingerprint = DataFingerprint {
        seq_len: setup.config.data.seq_len,
        seed: setup.config.data.seed,
        windows: setup.train.count(),
        batch_size: t.batch_size,
        gradient_accumulation_steps: t.gradient_accumulation_steps,
        world_size: 1,
    };
    let Some(dir) = existing else {
        return Ok(TrainerState {
            step: 0,
            optimizer_step: 0,
            skipped_steps: 0,
            tokens_seen: 0,
            loss_scaler: (setup.precision == Precision::Fp16).then(LossScaler::default),
            data: fingerprint,
        });
    };
    let state = resume(dir, setup, optimizer)?;
    if state.data != fingerprint {
        bail!(
            "{}: the checkpoint's data order ({:?}) differs from this config's ({:?}); \
             seq_len, seed, batch size, accumulation and the data must stay the same across a resume",
            dir.display(),
            state.data,
            fingerprint
        );
    }
    eprintln!("resuming from {} (step {})", dir.display(), state.step);
    Ok(state)
}

/// One optimizer step: the micro-batches' forward and backward passes, the
/// loss scale undone, the NaN guard, clipping and the update.
fn train_step(
    setup: &Setup,
    optimizer: &mut AdamW,
    sampler: &mut Sampler,
    state: &mut TrainerState,
) -> anyhow::Result<StepOutcome> {
    let t = &setup.config.training;
    optimizer.zero_grad();
    let scale = state.loss_scaler.map_or(1.0, |s| s.scale);
    let mut loss = 0.0;
    for micro in 0..t.gradient_accumulation_steps {
        let indices = sampler.micro_batch(state.step, micro);
        let (input, targets) = step::batch(&setup.train, &indices, setup.device)?;
        let factor = scale / t.gradient_accumulation_steps as f64;
        loss += step::forward_backward(
            setup.model.as_ref(),
            setup.precision,
            &input,
            &targets,
            factor,
            t.activation_checkpointing,
        ) / t.gradient_accumulation_steps as f64;
    }
    if scale != 1.0 {
        optim::scale_grads(&optimizer.params, 1.0 / scale);
    }
    let grad_norm = optim::grad_norm(&optimizer.params);
    let lr = optim::learning_rate(t, state.step);
    let mut skipped = false;
    if let Some(scaler) = state.loss_scaler.as_mut() {
        // fp16 overflow is routine: the scaler handles it by skipping.
        scaler.update(grad_norm.is_finite());
        skipped = !grad_norm.is_finite();
    }
    let finite = loss.is_finite() && grad_norm.is_finite();
    if !skipped && !finite {
        match t.nan_policy {
            NanPolicy::Stop => bail!(
                "step {}: loss {loss}, gradient norm {grad_norm}: stopping (training.nan_policy = \"stop\"); \
                 a lower learning_rate, more warmup_steps or nan_policy = \"skip\" may help",
                state.step + 1
            ),
            NanPolicy::Skip => skipped = true,
        }
    }
    if skipped {
        state.skipped_steps += 1;
    } else {
        if t.grad_clip > 0.0 && grad_norm > t.grad_clip {
            optim::scale_grads(&optimizer.params, t.grad_clip / (grad_norm + 1e-6));
        }
        optimizer.step(lr)?;
    }
    if let Device::Cuda(index) = setup.device {
        // Kernels run asynchronously: wait, so the step's time is its own.
        tch::Cuda::synchronize(index as i64);
    }
    Ok(StepOutcome { loss, grad_norm, lr, skipped })
}

/// The step on the progress bar, or a log line every tenth of the run when
/// there is no bar.
fn show_step(
    progress: &indicatif::ProgressBar,
    t: &crate::config::TrainingConfig,
    step: u64,
    outcome: &StepOutcome,
    tokens_per_s: f64,
) {
    let (loss, lr) = (outcome.loss, outcome.lr);
    progress.set_position(step);
    progress.set_message(format!("loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s"));
    if progress.is_hidden() && (step.is_multiple_of((t.max_steps / 10).max(1)) || step == t.max_steps) {
        eprintln!("step {step}/{}: loss {loss:.4}, lr {lr:.3e}, {tokens_per_s:.0} tokens/s", t.max_steps);
    }
}

/// Validation loss and perplexity, into the metrics and onto the screen.
fn evaluate(setup: &Setup, metrics: &mut Metrics, progress: &indicatif::ProgressBar, step: u64) -> anyhow::Result<()> {
    let t = &setup.config.training;
    let windows = setup.validation.as_ref().expect("checked in Setup::new");
    let eval_loss =
        step::evaluate(setup.model.as_ref(), setup.precision, windows, t.eval_steps, t.batch_size, setup.device)?;
    metrics.write(&serde_json::json!({
        "step": step,
        "eval_loss": eval_loss,
        "eval_perplexity": eval_loss.exp(),
    }))?;
    let line = format!("step {step}: validation loss {eval_loss:.4}, perplexity {:.2}", eval_loss.exp());
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
    Ok(())
}

fn save(output: &Path, setup: &Setup, optimizer: &AdamW, state: &TrainerState) -> anyhow::Result<PathBuf> {
    let mut moments = Vec::with_capacity(2 * optimizer.params.len());
    for p in &optimizer.params {
        moments.push((format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()));
        moments.push((format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.shallow_clone()));
    }
    let tokenizer = &setup.manifest.tokenizer;
    checkpoint::save(
        output,
        &checkpoint::Contents {
            model_config: &setup.config.model,
            weights: setup.weights(),
            optimizer: moments,
            state,
            eos_id: tokenizer.eos_id,
            bos_id: tokenizer.bos_id,
        },
    )
}

fn resume(dir: &Path, setup: &Setup, optimizer: &mut AdamW) -> anyhow::Result<TrainerState> {
    let state: TrainerState = checkpoint::read_json(&dir.join("trainer_state.json"))?;
    let weights_file = dir.join("model.safetensors");
    checkpoint::copy_into(&setup.weights(), &checkpoint::read_safetensors(&weights_file)?, &weights_file)?;
    let moments_file = dir.join("optimizer.safetensors");
    let moments = checkpoint::read_safetensors(&moments_file)?;
    let targets: Vec<(String, tch::Tensor)> = optimizer
        .params
        .iter()
        .flat_map(|p| {
            [
                (format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()),
                (format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.shallow_clone()),
            ]
        })
        .collect();
    checkpoint::copy_into(&targets, &moments, &moments_file)?;
    optimizer.step = state.optimizer_step;
    Ok(state)
}

/// `metrics.jsonl`: one line per step, one per evaluation. A resumed run
/// first drops the lines of steps after its checkpoint, which it reruns.
struct Metrics {
    file: std::fs::File,
}

impl Metrics {
    fn open(path: &Path, keep_through_step: u64) -> anyhow::Result<Metrics> {
        let kept: String = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= keep_through_step)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            Err(_) => String::new(),
        };
        let temp = path.with_extension("jsonl.partial");
        std::fs::write(&temp, kept).with_context(|| temp.display().to_string())?;
        std::fs::rename(&temp, path).with_context(|| path.display().to_string())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Metrics { file })
    }

    fn write(&mut self, value: &serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.file, "{value}")?;
        Ok(())
    }
}

fn progress_bar(total: u64, position: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(position);
    bar
}
