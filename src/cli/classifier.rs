//! `curate classifier train`: a supervised fastText model from positive and
//! negative documents, DCLM-style, for the `classifier` step.
//!
//! Documents become fastText's training lines (`__label__hq text`, the
//! text stripped and its newlines replaced as the step replaces them), in
//! an order shuffled by a seeded hash of each document, so a rerun writes
//! the same file. A share of each side, chosen by the same hash, is held
//! out and scored with the step's own predictor. One thread by default:
//! fastText's Hogwild updates make more threads faster but not repeatable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use curate::io::atomic;
use curate::io::doc::FieldNames;
use curate::io::docs::UnitBatches;
use curate::io::read::ReadOptions;
use curate_filters::FastTextModel;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{print_errors, usage, Error};

#[derive(Subcommand)]
pub enum ClassifierCommand {
    /// Train a fastText classifier (positive against negative documents) for the `classifier` step.
    Train(ClassifierTrainArgs),
}

#[derive(clap::Args)]
pub struct ClassifierTrainArgs {
    /// Documents of the positive class: a file, folder or glob of JSON Lines or Parquet.
    #[arg(long)]
    pub positive: String,
    /// Documents of the negative class.
    #[arg(long)]
    pub negative: String,
    /// Where to write the model (`.bin`); the held-out scores go beside it as `.metrics.json`.
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value = "hq")]
    pub positive_label: String,
    #[arg(long, default_value = "lq")]
    pub negative_label: String,
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Percent of each class held out for precision and recall.
    #[arg(long, default_value_t = 10)]
    pub holdout_percent: u64,
    /// What a newline becomes (the `classifier` step's `newline_replacement`, datatrove's default).
    #[arg(long, default_value = "")]
    pub newline_replacement: String,
    /// fastText's -dim.
    #[arg(long, default_value_t = 100)]
    pub dim: i32,
    /// fastText's -epoch.
    #[arg(long, default_value_t = 5)]
    pub epoch: i32,
    /// fastText's -lr.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// fastText's -wordNgrams.
    #[arg(long, default_value_t = 1)]
    pub word_ngrams: i32,
    /// fastText's -minn (character n-grams; 0 turns them off).
    #[arg(long, default_value_t = 0)]
    pub minn: i32,
    /// fastText's -maxn.
    #[arg(long, default_value_t = 0)]
    pub maxn: i32,
    /// fastText's -minCount.
    #[arg(long, default_value_t = 1)]
    pub min_count: i32,
    /// fastText's -bucket (hashed n-gram rows).
    #[arg(long, default_value_t = 2_000_000)]
    pub bucket: i32,
    /// fastText's -loss: softmax, hs, ova or ns.
    #[arg(long, default_value = "softmax")]
    pub loss: String,
    /// fastText's -seed; also shuffles and splits the documents.
    #[arg(long, default_value_t = 0)]
    pub seed: i32,
    /// Training threads (more are faster, and no longer repeatable).
    #[arg(long, default_value_t = 1)]
    pub threads: i32,
    /// Also keep the training and held-out lines, as OUTPUT.train.txt and OUTPUT.valid.txt.
    #[arg(long)]
    pub keep_data: bool,
}

/// One training line, and where it sorts.
struct Example {
    key: u64,
    positive: bool,
    line: String,
}

pub fn classifier(command: ClassifierCommand) -> Result<ExitCode, Error> {
    match command {
        ClassifierCommand::Train(args) => train(args),
    }
}

fn train(args: ClassifierTrainArgs) -> Result<ExitCode, Error> {
    if args.holdout_percent >= 100 {
        return Err(usage("--holdout-percent must be below 100"));
    }
    let loss = match args.loss.as_str() {
        "softmax" => fasttext::args::LossName::Softmax,
        "hs" => fasttext::args::LossName::HierarchicalSoftmax,
        "ova" => fasttext::args::LossName::OneVsAll,
        "ns" => fasttext::args::LossName::NegativeSampling,
        other => return Err(usage(format!("--loss {other:?}: give softmax, hs, ova or ns"))),
    };
    for (flag, label) in [("--positive-label", &args.positive_label), ("--negative-label", &args.negative_label)] {
        if label.is_empty() || label.chars().any(char::is_whitespace) {
            return Err(usage(format!("{flag} {label:?}: a label is one word")));
        }
    }
    if args.positive_label == args.negative_label {
        return Err(usage("--positive-label and --negative-label are the same"));
    }
    if args.newline_replacement.contains('\n') {
        return Err(usage("--newline-replacement must not hold a newline: a training example is one line"));
    }
    if args.threads < 1 {
        return Err(usage("--threads must be at least 1"));
    }
    let mut train = Vec::new();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (positive, input, label) in
        [(true, &args.positive, &args.positive_label), (false, &args.negative, &args.negative_label)]
    {
        let plan = curate::io::plan::plan(input, None, u64::MAX)?;
        let names = FieldNames { text: args.text_field.clone(), id: "id".into(), raw_text: false };
        let read = std::sync::Arc::new(ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
        let mut batches = UnitBatches::all(&plan, read);
        let mut n = 0u64;
        while let Some((_, batch)) = batches.next_batch() {
            for doc in batch {
                let text = curate_filters::text::strip(&doc.text).replace('\n', &args.newline_replacement);
                // The hash of the side, the position and the text: documents
                // with the same text on one side still sort apart.
                let key = xxh3_64_with_seed(format!("{positive}\u{0}{n}\u{0}{text}").as_bytes(), args.seed as u64);
                n += 1;
                let example = Example { key, positive, line: format!("__label__{label} {text}") };
                if key % 100 < args.holdout_percent {
                    valid.push(example);
                } else {
                    train.push(example);
                }
            }
        }
        if n == 0 {
            return Err(usage(format!("no documents in {input}")));
        }
        errors.push(batches.errors);
    }
    train.sort_by_key(|e| e.key);
    valid.sort_by_key(|e| e.key);
    let dir = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| usage(format!("{}: {e}", dir.display())))?;
    // fastText reads its input from a file: a temporary one beside the model.
    let lines = |examples: &[Example]| examples.iter().map(|e| format!("{}\n", e.line)).collect::<String>();
    let data = TempFile(dir.join(format!(".curate-classifier-{}.txt", std::process::id())));
    std::fs::File::create(&data.0)
        .and_then(|mut f| f.write_all(lines(&train).as_bytes()))
        .map_err(|e| usage(format!("{}: {e}", data.0.display())))?;
    let mut ft = fasttext::args::Args::default();
    ft.apply_supervised_defaults();
    ft.input = data.0.clone();
    ft.loss = loss;
    ft.dim = args.dim;
    ft.epoch = args.epoch;
    ft.lr = args.lr;
    ft.word_ngrams = args.word_ngrams;
    ft.minn = args.minn;
    ft.maxn = args.maxn;
    ft.min_count = args.min_count;
    ft.bucket = if args.word_ngrams <= 1 && args.maxn == 0 { 0 } else { args.bucket };
    ft.seed = args.seed;
    ft.thread = args.threads;
    ft.verbose = 0;
    eprintln!(
        "curate: training on {} documents ({} held out), {} epochs, {} thread(s)",
        train.len(),
        valid.len(),
        args.epoch,
        args.threads
    );
    let model = fasttext::FastText::train(ft).map_err(|e| usage(format!("fastText training: {e}")))?;
    let mut bytes = Vec::new();
    model.save(&mut bytes).map_err(|e| usage(format!("fastText model: {e}")))?;
    drop(data);

    let metrics = evaluate(&bytes, train.len(), &valid, &args)?;
    atomic::write(&args.output, &bytes)?;
    let metrics_path = sibling(&args.output, ".metrics.json");
    atomic::write(&metrics_path, (serde_json::to_string_pretty(&metrics).expect("serialisable") + "\n").as_bytes())?;
    if args.keep_data {
        atomic::write(&sibling(&args.output, ".train.txt"), lines(&train).as_bytes())?;
        atomic::write(&sibling(&args.output, ".valid.txt"), lines(&valid).as_bytes())?;
    }
    eprintln!(
        "curate: wrote {}; held out: accuracy {:.4}, precision {:.4}, recall {:.4} ({})",
        args.output.display(),
        metrics["accuracy"].as_f64().unwrap_or(f64::NAN),
        metrics["precision"].as_f64().unwrap_or(f64::NAN),
        metrics["recall"].as_f64().unwrap_or(f64::NAN),
        metrics_path.display()
    );
    for e in &errors {
        print_errors(&e.kinds);
    }
    Ok(ExitCode::SUCCESS)
}

/// A file removed when dropped, on success or error.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `model.bin` → `model.bin.metrics.json`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Accuracy, and precision and recall of the positive label, on the
/// held-out lines, with the predictor the `classifier` step uses.
fn evaluate(
    bytes: &[u8],
    trained: usize,
    valid: &[Example],
    args: &ClassifierTrainArgs,
) -> Result<serde_json::Value, Error> {
    let model = FastTextModel::from_bytes(bytes).map_err(|e| usage(format!("the trained model: {e}")))?;
    let positive = model.label_index(&args.positive_label);
    let (mut tp, mut fp, mut fn_, mut correct) = (0u64, 0u64, 0u64, 0u64);
    for example in valid {
        let text = example.line.split_once(' ').map_or("", |(_, t)| t);
        let top = model.predict(text, 1, 0.0).first().map(|p| p.label);
        let said_positive = top.is_some() && top == positive;
        match (said_positive, example.positive) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
        correct += u64::from(said_positive == example.positive);
    }
    let ratio = |a: u64, b: u64| if b == 0 { serde_json::Value::Null } else { (a as f64 / b as f64).into() };
    Ok(serde_json::json!({
        "trained": trained,
        "held_out": valid.len(),
        "held_out_positive": valid.iter().filter(|e| e.positive).count(),
        "accuracy": ratio(correct, valid.len() as u64),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn_),
        "positive_label": args.positive_label,
        "negative_label": args.negative_label,
    }))
}
