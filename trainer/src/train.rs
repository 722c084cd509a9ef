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
use crate::data::{Data, Sampler, TokenStream, Windows};
use crate::distributed::environment::Launch;
use crate::distributed::group::Reduce;
use crate::distributed::zero::ShardedAdamW;
use crate::distributed::{self, DataParallel};
use crate::hooks;
use crate::model::{self, CausalLm};
use crate::optim::{self, AdamW};
use crate::packing;
use crate::precision::{LossScaler, Precision};
use crate::pretrained;
use crate::step;
use crate::updater::Updater;

/// A model and its data, ready to train or inspect.
pub struct Setup {
    pub config: TrainConfig,
    pub manifest: Manifest,
    pub device: Device,
    pub precision: Precision,
    pub vs: nn::VarStore,
    pub model: Box<dyn CausalLm>,
    pub train: Data,
    pub validation: Option<Data>,
    /// This rank's place in a job of more than one rank.
    pub launch: Option<Launch>,
    /// Micro-batches per optimizer step on this job's number of ranks.
    pub accumulation: usize,
    /// The LoRA adapters trained, when `[lora]` is set.
    pub lora: Option<crate::model::lora::LoraSpec>,
}

impl Setup {
    /// Resolves the config against the data (vocabulary size, shard format)
    /// and the job's ranks, opens the shards and builds the model from
    /// `training.seed`, or with `model.init_from`'s weights.
    pub fn new(mut config: TrainConfig, launch: Option<Launch>) -> anyhow::Result<Setup> {
        let launch = launch.filter(|l| l.world > 1);
        let world = launch.as_ref().map_or(1, |l| l.world);
        let accumulation = config.training.accumulation(world)?;
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
        let vocab_size = config.model.vocab_size.expect("resolved above") as u64;
        match (&config.dpo, manifest.pairs) {
            (None, true) => bail!(
                "data.path: {} holds preference pairs (prompt, chosen, rejected): train on them with a [dpo] table",
                manifest_path.display()
            ),
            (Some(_), false) => bail!(
                "dpo: {} holds no preference pairs (curate tokenize --chat of prompt, chosen, rejected records)",
                manifest_path.display()
            ),
            _ => {}
        }
        let open = |split: Split| -> anyhow::Result<Data> {
            if manifest.loss_mask {
                let examples = packing::read_examples(&config.data.path, &manifest, split, format, vocab_size)?;
                if let Some(dpo) = &config.dpo {
                    return Ok(Data::Packed(packing::pair_rows(examples, seq_len, config.data.overlong, dpo.clone())));
                }
                return Ok(Data::Packed(packing::pack(examples, seq_len, config.data.overlong, config.data.packing)));
            }
            Ok(Data::Windows(Windows::new(
                TokenStream::open(&config.data.path, &manifest, split, format, vocab_size)?,
                seq_len,
            )))
        };
        let train = open(Split::Train)?;
        if train.count() == 0 {
            match &train {
                Data::Windows(_) => bail!(
                    "data.path: the train split of {} holds {} tokens, fewer than one window of seq_len + 1 = {}",
                    manifest_path.display(),
                    manifest.tokens(Split::Train),
                    seq_len + 1
                ),
                Data::Packed(rows) => bail!(
                    "data.path: the train split of {} has no example to train on ({:?})",
                    manifest_path.display(),
                    rows.stats
                ),
            }
        }
        let validation = match manifest.docs(Split::Validation) {
            0 => None,
            _ => Some(open(Split::Validation)?).filter(|v| v.count() > 0),
        };
        if config.training.eval_interval > 0 && validation.is_none() {
            bail!(
                "training.eval_interval: {} has no validation split of at least seq_len + 1 tokens \
                 (curate tokenize --validation-fraction makes one)",
                manifest_path.display()
            );
        }
        let mut device = model::device_of(&config.training.device).context("training.device")?;
        if let (Some(l), Device::Cuda(_), false) = (&launch, device, config.training.device.starts_with("cuda:")) {
            // One GPU per local rank, as torchrun's LOCAL_RANK means.
            device = model::device_of(&format!("cuda:{}", l.local_rank)).context("training.device, LOCAL_RANK")?;
        }
        let precision = Precision::from_config(&config.training);
        if let Some(n) = config.training.threads {
            tch::set_num_threads(n as i32);
        }
        tch::manual_seed(config.training.seed as i64);
        let vs = nn::VarStore::new(device);
        let lora = config.lora.as_ref().map(|l| l.spec(config.model.architecture)).transpose()?;
        let model = model::build_with(&vs, &config.model, lora.as_ref());
        let (adapters, base): (Vec<_>, Vec<_>) =
            pretrained::variables(&vs).into_iter().partition(|(name, _)| pretrained::adapter::is_adapter_weight(name));
        if lora.is_some() {
            // Only the adapters train: the base gets no gradient and no optimizer state.
            let bf16 = config.lora.as_ref().is_some_and(|l| l.base_bf16);
            for (_, w) in &base {
                let mut w = w.shallow_clone();
                let _ = w.set_requires_grad(false);
                if bf16 && w.kind() == tch::Kind::Float {
                    // In place, so the model's own handles see it, and before
                    // the weights are read, so fp32 and bf16 copies of the
                    // model are never in memory together.
                    tch::no_grad(|| w.set_data(&w.to_kind(tch::Kind::BFloat16)));
                }
            }
        }
        if let Some(from) = &config.model.init_from {
            // Before a resume replaces them; it costs one read of the weights.
            pretrained::weights::load_into(&base, from)?;
        }
        if let Some(from) = config.lora.as_ref().and_then(|l| l.init_from.as_ref()) {
            pretrained::load_adapter_weights(&adapters, from)?;
        }
        Ok(Setup { config, manifest, device, precision, vs, model, train, validation, launch, accumulation, lora })
    }

    pub fn rank(&self) -> usize {
        self.launch.as_ref().map_or(0, |l| l.rank)
    }

    pub fn world(&self) -> usize {
        self.launch.as_ref().map_or(1, |l| l.world)
    }

    /// Trainable weights by Hugging Face name (under LoRA, the adapters only).
    pub fn weights(&self) -> Vec<(String, tch::Tensor)> {
        let mut w: Vec<_> = self.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    }
}

pub struct Options {
    /// Overrides `training.output_dir`.
    pub output: Option<PathBuf>,
    pub resume: bool,
    /// This process's rank, when a launcher started it as one.
    pub launch: Option<Launch>,
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
    /// DPO's sums over the step's pairs (all ranks).
    dpo: Option<crate::dpo::DpoStats>,
    /// Input tokens of the step over all ranks, padding left out.
    tokens: u64,
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
    let mut setup = Setup::new(config, options.launch.clone())?;
    reference_pass(&mut setup, &output)?;
    let t = setup.config.training.clone();
    let (rank, world) = (setup.rank(), setup.world());
    let leader = rank == 0;
    if leader {
        std::fs::create_dir_all(&output).with_context(|| output.display().to_string())?;
        checkpoint::write_json(&output.join("train.json"), &setup.config)?;
    }
    let mut sampler =
        Sampler::new(setup.config.data.seed, setup.train.count(), t.batch_size, setup.accumulation, rank, world);
    let mut parallel = match &setup.launch {
        Some(launch) => Some(join(&setup, launch, &mut sampler)?),
        None => None,
    };
    let mut optimizer = match &parallel {
        Some(dp) if dp.zero > 0 => Updater::Sharded(ShardedAdamW::new(&dp.params, &dp.layout, rank, &t)),
        _ => Updater::Whole(AdamW::new(setup.weights(), &t)),
    };
    let mut state = start_state(&setup, existing.as_deref(), &mut optimizer)?;
    if let Some(dp) = &parallel {
        dp.broadcast_weights()?;
    }
    let mut metrics = if leader { Some(Metrics::open(&output.join("metrics.jsonl"), state.step)?) } else { None };
    if let (Data::Packed(rows), Some(m)) = (&setup.train, metrics.as_mut()) {
        let p = &rows.stats;
        eprintln!(
            "chat data: {} examples in {} rows of {} tokens ({:.1}% padding); {} truncated, {} dropped as too long, \
             {} with nothing to train on; {} trained tokens",
            p.examples,
            p.rows,
            rows.seq_len(),
            100.0 * p.padding_share,
            p.truncated,
            p.dropped_overlong,
            p.dropped_untrained,
            p.trained_tokens
        );
        if state.step == 0 {
            m.write(&serde_json::json!({ "step": 0, "packing": p }))?;
        }
    }
    let flops_per_token = 6.0 * model::flop_parameters(&setup.vs) as f64
        + 12.0 * (setup.config.model.num_layers * setup.config.model.hidden_size * setup.config.data.seq_len) as f64;
    // The gradients a rank holds from the end of the backward pass to the
    // update: all of them, or under ZeRO-2 its share of each bucket.
    let gradient_bytes = match &parallel {
        Some(dp) if dp.zero == 2 => dp.layout.shard_len() as u64 * 4,
        Some(dp) => dp.layout.buckets.iter().map(|b| b.len as u64 * 4).sum(),
        None => setup.weights().iter().map(|(_, w)| w.numel() as u64 * 4).sum(),
    };
    // Every weight, trained or frozen, in the dtype it is held in.
    let weight_bytes: u64 =
        setup.vs.variables().values().map(|w| (w.numel() * w.kind().elt_size_in_bytes()) as u64).sum();
    let progress = if leader { progress_bar(t.max_steps, state.step) } else { indicatif::ProgressBar::hidden() };
    let started = Instant::now();
    let mut last_loss = f64::NAN;
    let mut last_checkpoint = existing;

    while state.step < t.max_steps {
        let step_started = Instant::now();
        let outcome = train_step(&setup, &mut optimizer, parallel.as_mut(), &mut sampler, &mut state)?;
        state.step += 1;
        state.optimizer_step = optimizer.updates();
        state.tokens_seen += outcome.tokens;
        last_loss = outcome.loss;
        let tokens_per_s = outcome.tokens as f64 / step_started.elapsed().as_secs_f64();
        // Peak FLOP/s is per device: the job's peak is every rank's.
        let mfu = t.peak_tflops.map(|peak| flops_per_token * tokens_per_s / (peak * 1e12 * world as f64));
        let peak_rss = peak_rss_by_rank(parallel.as_ref())?;
        if let Some(metrics) = metrics.as_mut() {
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
                "ranks": world,
                "weight_bytes": weight_bytes,
                "optimizer_state_bytes": optimizer.state_bytes(),
                "gradient_bytes": gradient_bytes,
                "peak_rss_bytes": peak_rss,
                "elapsed_s": started.elapsed().as_secs_f64(),
            }))?;
            if let Some(d) = outcome.dpo {
                let mut m = d.means("");
                m.insert("step".into(), serde_json::json!(state.step));
                metrics.write(&serde_json::Value::Object(m))?;
            }
        }
        if leader {
            show_step(&progress, &t, state.step, &outcome, tokens_per_s);
        }
        if t.eval_interval > 0 && (state.step.is_multiple_of(t.eval_interval) || state.step == t.max_steps) {
            evaluate(&setup, parallel.as_ref(), metrics.as_mut(), &progress, state.step)?;
        }
        if (t.checkpoint_interval > 0 && state.step.is_multiple_of(t.checkpoint_interval)) || state.step == t.max_steps
        {
            last_checkpoint = Some(save(&output, &setup, &optimizer, parallel.as_ref(), &state)?);
        }
        hooks::step_done(state.step, rank);
    }
    progress.finish_and_clear();
    let checkpoint = last_checkpoint.context("no step ran")?;
    Ok(Summary { steps: state.step, skipped_steps: state.skipped_steps, last_loss, checkpoint })
}

/// Joins the job's process group and lays out the gradient buckets from
/// one calibration pass (its gradients are dropped: it changes nothing).
fn join(setup: &Setup, launch: &Launch, sampler: &mut Sampler) -> anyhow::Result<DataParallel> {
    let d = &setup.config.distributed;
    let mut dp = DataParallel::join(launch, setup.device, d, setup.weights())?;
    let t = &setup.config.training;
    let indices = sampler.micro_batch(0, 0);
    dp.calibrate(d.bucket_mb, || -> anyhow::Result<()> {
        let batch = step::batch(&setup.train, &indices, setup.device)?;
        step::forward_backward(setup.model.as_ref(), setup.precision, &batch, 1.0, t.activation_checkpointing);
        Ok(())
    })?;
    for (_, p) in &dp.params {
        optim::reset_grad(p);
    }
    if launch.rank == 0 {
        let backend = if setup.device.is_cuda() { "NCCL" } else { "Gloo" };
        let sharding = match d.zero {
            0 => "optimizer state on every rank".to_string(),
            1 => "ZeRO-1 (optimizer state sharded)".to_string(),
            _ => "ZeRO-2 (optimizer state and gradients sharded)".to_string(),
        };
        eprintln!(
            "data parallel: {} ranks ({}, {backend}), {} gradient buckets of at most {} MiB, {sharding}; \
             {} micro-batch(es) of {} per rank per step",
            launch.world,
            launch.source,
            dp.layout.buckets.len(),
            d.bucket_mb,
            setup.accumulation,
            t.batch_size
        );
    }
    Ok(dp)
}

/// Every rank's peak resident memory, gathered (one number per rank).
fn peak_rss_by_rank(dp: Option<&DataParallel>) -> anyhow::Result<Vec<u64>> {
    let mine = distributed::peak_rss_bytes();
    let Some(dp) = dp else { return Ok(vec![mine]) };
    let all = dp.group.all_gather_value(mine as f64, "the memory figures")?;
    Ok(all.into_iter().map(|b| b as u64).collect())
}

/// The state to start from: fresh, or the latest checkpoint's, whose data
/// order must be this config's.
fn start_state(setup: &Setup, existing: Option<&Path>, optimizer: &mut Updater) -> anyhow::Result<TrainerState> {
    let t = &setup.config.training;
    let fingerprint = DataFingerprint {
        seq_len: setup.config.data.seq_len,
        seed: setup.config.data.seed,
        windows: setup.train.count(),
        global_batch: t.batch_size * setup.accumulation * setup.world(),
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
             seq_len, seed, the data and the global batch (batch_size × accumulation × ranks) \
             must stay the same across a resume",
            dir.display(),
            state.data,
            fingerprint
        );
    }
    if setup.rank() == 0 {
        eprintln!("resuming from {} (step {})", dir.display(), state.step);
    }
    Ok(state)
}

/// One optimizer step: the micro-batches' forward and backward passes
/// (gradients averaged over ranks during the last one), the loss scale
/// undone, the NaN guard, clipping and the update.
fn train_step(
    setup: &Setup,
    optimizer: &mut Updater,
    mut dp: Option<&mut DataParallel>,
    sampler: &mut Sampler,
    state: &mut TrainerState,
) -> anyhow::Result<StepOutcome> {
    let t = &setup.config.training;
    let accumulation = setup.accumulation;
    optimizer.zero_grad();
    let scale = state.loss_scaler.map_or(1.0, |s| s.scale);
    let mut batches = (0..accumulation)
        .map(|micro| step::batch(&setup.train, &sampler.micro_batch(state.step, micro), setup.device))
        .collect::<Result<Vec<_>, _>>()?;
    // Packed examples: every trained target of the step weighs the same,
    // whichever micro-batch and rank it falls in (as transformers'
    // num_items_in_batch). The reducer's average over ranks divides by the
    // world once more, so each rank divides by the total / world.
    let packed = matches!(&setup.train, Data::Packed(r) if r.pairs.is_none());
    let mut tokens: u64 = batches.iter().map(|b| b.tokens).sum();
    if packed {
        let mine: u64 = batches.iter().map(step::Batch::trained).sum();
        let totals = match dp.as_deref() {
            Some(dp) => {
                dp.group.all_reduce_values(&[mine as f64, tokens as f64], Reduce::Sum, "the step's trained tokens")?
            }
            None => vec![mine as f64, tokens as f64],
        };
        tokens = totals[1] as u64;
        for b in &mut batches {
            b.normaliser = (totals[0] / setup.world() as f64).max(f64::MIN_POSITIVE);
        }
    } else if matches!(setup.train, Data::Windows(_)) {
        // Windows are all seq_len long: every rank reads as many tokens.
        tokens *= setup.world() as u64;
    }
    let mut loss = 0.0;
    let mut dpo: Option<crate::dpo::DpoStats> = None;
    for (micro, batch) in batches.iter().enumerate() {
        if micro + 1 == accumulation {
            if let Some(dp) = dp.as_deref_mut() {
                dp.reducer.arm();
            }
        }
        // Windows average their micro-batches' means; packed losses are
        // already shares of the step's sum.
        let share = if packed { 1.0 } else { 1.0 / accumulation as f64 };
        if setup.lora.as_ref().is_some_and(|l| l.dropout > 0.0) {
            // Dropout masks from the seed, step, micro-batch and rank alone,
            // so that a resumed run draws the same ones.
            let key = [t.seed, state.step, micro as u64, setup.rank() as u64];
            tch::manual_seed(
                key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, k| (h ^ k).wrapping_mul(0x1000_0000_01b3)) as i64
            );
        }
        loss += crate::model::lora::training(|| {
            step::forward_backward(
                setup.model.as_ref(),
                setup.precision,
                batch,
                scale * share,
                t.activation_checkpointing,
            )
        }) * share;
        if let Some(d) = &batch.dpo {
            dpo.get_or_insert_with(crate::dpo::DpoStats::default).add(&d.stats.get());
        }
    }
    if let Some(dp) = dp.as_deref_mut() {
        dp.reducer.finish()?;
        loss = dp.group.mean(loss, "the loss")?;
        if let Some(d) = dpo {
            let mut values = d.to_vec();
            values.push(tokens as f64);
            let sums = dp.group.all_reduce_values(&values, Reduce::Sum, "the DPO metrics")?;
            tokens = sums[sums.len() - 1] as u64;
            dpo = Some(crate::dpo::DpoStats::from_slice(&sums));
        }
    }
    let shared = dp.as_deref();
    if scale != 1.0 {
        optimizer.scale_grads(1.0 / scale, shared);
    }
    // Computed from the averaged gradients, the norm is the same on every
    // rank, so every rank takes the same decisions below (fp16's overflow
    // check included).
    let grad_norm = optimizer.grad_norm(shared)?;
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
            optimizer.scale_grads(t.grad_clip / (grad_norm + 1e-6), shared);
        }
        optimizer.step(lr, shared)?;
    }
    if let Some(dp) = dp {
        // ZeRO-2's gradient shares live for one step only.
        dp.reducer.shares.clear();
    }
    if let Device::Cuda(index) = setup.device {
        // Kernels run asynchronously: wait, so the step's time is its own.
        tch::Cuda::synchronize(index as i64);
    }
    Ok(StepOutcome { loss, grad_norm, lr, skipped, dpo, tokens })
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

/// Validation loss and perplexity (each rank evaluates its share of the
/// windows), into the metrics and onto the screen.
fn evaluate(
    setup: &Setup,
    dp: Option<&DataParallel>,
    metrics: Option<&mut Metrics>,
    progress: &indicatif::ProgressBar,
    step: u64,
) -> anyhow::Result<()> {
    let t = &setup.config.training;
    let windows = setup.validation.as_ref().expect("checked in Setup::new");
    let (rank, world) = (setup.rank(), setup.world());
    let e = step::evaluate(
        setup.model.as_ref(),
        setup.precision,
        windows,
        t.eval_steps,
        t.batch_size,
        setup.device,
        rank,
        world,
    )?;
    let mut values = vec![e.sum, e.count as f64];
    values.extend(e.dpo.map(|d| d.to_vec()).unwrap_or_default());
    let totals = match dp {
        Some(dp) => dp.group.all_reduce_values(&values, Reduce::Sum, "the validation loss")?,
        None => values,
    };
    let eval_loss = totals[0] / totals[1];
    let Some(metrics) = metrics else { return Ok(()) };
    let mut line = serde_json::json!({ "step": step, "eval_loss": eval_loss });
    let text = match e.dpo {
        Some(_) => {
            let stats = crate::dpo::DpoStats::from_slice(&totals[2..]);
            let means = stats.means("eval_");
            let accuracy = means["eval_rewards/accuracies"].as_f64().unwrap_or(0.0);
            line.as_object_mut().expect("an object").extend(means);
            format!("step {step}: validation DPO loss {eval_loss:.4}, reward accuracy {:.1}%", 100.0 * accuracy)
        }
        None => {
            line["eval_perplexity"] = serde_json::json!(eval_loss.exp());
            format!("step {step}: validation loss {eval_loss:.4}, perplexity {:.2}", eval_loss.exp())
        }
    };
    metrics.write(&line)?;
    let line = text;
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
    Ok(())
}

/// Rank 0 writes the checkpoint (sharded optimizer state is gathered to
/// it first); the others wait until it is complete and `latest` names it.
fn save(
    output: &Path,
    setup: &Setup,
    optimizer: &Updater,
    dp: Option<&DataParallel>,
    state: &TrainerState,
) -> anyhow::Result<PathBuf> {
    let moments = optimizer.moments(dp)?;
    let dir = match moments {
        Some(moments) if setup.rank() == 0 => {
            let (bos_id, eos_ids) = special_tokens(setup)?;
            checkpoint::save(
                output,
                &checkpoint::Contents {
                    model_config: &setup.config.model,
                    weights: setup.weights(),
                    optimizer: moments,
                    state,
                    bos_id,
                    eos_ids,
                    lora: setup.lora.as_ref().zip(setup.config.lora.as_ref()).map(|(spec, config)| {
                        checkpoint::LoraContents {
                            spec,
                            config,
                            architecture: setup.config.model.architecture,
                            base: setup.config.model.init_from.as_deref().expect("checked: LoRA needs init_from"),
                        }
                    }),
                },
            )?
        }
        _ => checkpoint::step_dir(output, state.step),
    };
    if let Some(dp) = dp {
        dp.group.barrier(&format!("after checkpoint {}", dir.display()))?;
    }
    Ok(dir)
}

/// DPO's reference log-probabilities of every pair, computed once with the
/// model as it starts (under LoRA, without its adapters) and kept in
/// `OUTPUT/reference_logps.safetensors`, which a resumed run reads instead.
/// Every rank computes them alike; rank 0 writes the file.
pub fn reference_pass(setup: &mut Setup, output: &Path) -> anyhow::Result<()> {
    if !matches!(&setup.train, Data::Packed(r) if r.pairs.is_some()) {
        return Ok(());
    }
    let file = output.join("reference_logps.safetensors");
    let mut stored: std::collections::BTreeMap<String, tch::Tensor> =
        if file.is_file() { checkpoint::read_safetensors(&file)? } else { Default::default() };
    let mut computed = false;
    let batch = setup.config.training.batch_size;
    let (model, precision, device) = (setup.model.as_ref(), setup.precision, setup.device);
    for (name, data) in [("train", Some(&mut setup.train)), ("validation", setup.validation.as_mut())] {
        let Some(Data::Packed(rows)) = data else { continue };
        let table = match stored.get(name) {
            Some(t) if t.size() == [rows.count() as i64, 2] => t.shallow_clone(),
            Some(t) => bail!("{}: `{name}` has shape {:?}, not [{}, 2]", file.display(), t.size(), rows.count()),
            None => {
                computed = true;
                let t = step::reference_logps(model, precision, rows, batch, device);
                stored.insert(name.to_owned(), t.shallow_clone());
                t
            }
        };
        rows.pairs.as_mut().expect("pairs").reference = Some(table);
    }
    if computed && setup.rank() == 0 {
        std::fs::create_dir_all(output).with_context(|| output.display().to_string())?;
        let temp = output.join(".reference_logps.safetensors.partial");
        let tensors: Vec<(String, tch::Tensor)> = stored.into_iter().collect();
        checkpoint::write_safetensors(&temp, &tensors)?;
        std::fs::rename(&temp, &file).with_context(|| file.display().to_string())?;
    }
    Ok(())
}

/// The special tokens a checkpoint's config.json names: the pretrained
/// model's when training started from one, else the data's tokenizer's.
fn special_tokens(setup: &Setup) -> anyhow::Result<(Option<u32>, Vec<u32>)> {
    if let Some(from) = &setup.config.model.init_from {
        let imported = pretrained::describe(from)?;
        return Ok((imported.bos_id, imported.eos_ids));
    }
    let tokenizer = &setup.manifest.tokenizer;
    Ok((tokenizer.bos_id, tokenizer.eos_id.into_iter().collect()))
}

fn resume(dir: &Path, setup: &Setup, optimizer: &mut Updater) -> anyhow::Result<TrainerState> {
    let state: TrainerState = checkpoint::read_json(&dir.join("trainer_state.json"))?;
    if setup.lora.is_some() {
        pretrained::load_adapter_weights(&setup.weights(), dir)?;
    } else {
        let weights_file = dir.join("model.safetensors");
        checkpoint::copy_into(&setup.weights(), &checkpoint::read_safetensors(&weights_file)?, &weights_file)?;
    }
    let moments_file = dir.join("optimizer.safetensors");
    optimizer.load_moments(&checkpoint::read_safetensors(&moments_file)?, &moments_file)?;
    optimizer.set_updates(state.optimizer_step);
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
