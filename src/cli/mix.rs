//! `curate mix RECIPE.toml`: a corpus mixed from sources by token counts,
//! as dolma's mixer and the ablations of FineWeb and DCLM build theirs.
//!
//! Each source (a folder of shards, optionally narrowed by a `where`
//! condition) gets a token target: `tokens`, or `weight` × `total_tokens`.
//! A counting pass tokenizes the source's documents; the target then takes
//! whole copies of the source (up-sampling, one epoch each) and, for the
//! rest, the documents with the smallest keys, a key being a seeded hash of
//! the source's name and the document's id, until the tokens are closest to
//! the target. So a mix is reproducible, lands within one document of each
//! target, and adding documents to one source changes nothing in the others.
//!
//! Every epoch of a source is written by the engine as `curate run` writes
//! (`OUT/corpus/<source>/epoch-<k>/`, with its stats.json), `OUT/mix.json`
//! reports documents and tokens per source, intended and achieved, and a
//! `[tokenize]` table puts the token shards of the whole mix in OUT/tokens.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use curate::io::doc::{Doc, FieldNames};
use curate::io::plan;
use curate::io::read::{self, ReadOptions};
use curate::pipeline::config::{OutputFormat, StepMode, StepSpec};
use curate::pipeline::executor::{self, RunOptions};
use curate::runtime::progress::ProgressMode;
use curate::runtime::task::Task;
use curate::step::{Condition, Mode, Outcome, SelectStep, Step};
use curate::tokenize::encode::TokenizeOptions;
use curate::tokenize::TokenizeConfig;
use curate_query::Predicate;

use super::select::{select_pipeline, select_spec, PolarsCondition};
use super::tokenizer::run_tokenize;
use super::{named, threads, usage, Error};

#[derive(clap::Args)]
pub struct MixArgs {
    /// The recipe (TOML): sources, their targets, the output.
    pub recipe: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
    pub progress: ProgressMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipe {
    /// Seeds the keys that choose documents: another seed, another sample.
    #[serde(default)]
    seed: u64,
    /// The tokenizer that counts tokens (tokenizer.json).
    tokenizer: PathBuf,
    /// With `weight`s: the mix's size in tokens.
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default = "default_text_field")]
    text_field: String,
    #[serde(default = "default_id_field")]
    id_field: String,
    #[serde(rename = "source")]
    sources: Vec<Source>,
    output: Output,
    /// Token shards of the whole mix in OUT/tokens, as a pipeline's `[tokenize]`.
    #[serde(default)]
    tokenize: Option<TokenizeConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    name: String,
    path: String,
    #[serde(default, rename = "where")]
    condition: Option<String>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    path: PathBuf,
    #[serde(default)]
    format: OutputFormat,
}

fn default_text_field() -> String {
    "text".into()
}
fn default_id_field() -> String {
    "id".into()
}

/// The mixed documents' folder in OUT (beside `tokens/` and `mix.json`).
const CORPUS: &str = "corpus";

/// What `mix.json` says of one source.
#[derive(Debug, Serialize)]
struct SourceReport {
    name: String,
    /// Documents and tokens of the source that meet its condition.
    available_docs: u64,
    available_tokens: u64,
    intended_tokens: u64,
    intended_share: f64,
    /// Whole copies of the source, then the sampled part.
    epochs: u64,
    sampled_docs: u64,
    sampled_tokens: u64,
    docs: u64,
    tokens: u64,
    share: f64,
}

pub fn mix(args: MixArgs) -> Result<ExitCode, Error> {
    let file = args.recipe.display().to_string();
    let text = std::fs::read_to_string(&args.recipe).map_err(|e| usage(format!("cannot read {file}: {e}")))?;
    let deserializer = toml::Deserializer::parse(&text).map_err(|e| usage(format!("{file}: {}", e.message())))?;
    let recipe: Recipe = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| usage(format!("{file}: {}: {}", e.path(), e.inner().message())))?;
    let targets = targets(&recipe).map_err(|e| usage(format!("{file}: {e}")))?;
    let tokenizer = tokenizers::Tokenizer::from_file(&recipe.tokenizer)
        .map_err(|e| usage(format!("{file}: tokenizer {}: {e}", recipe.tokenizer.display())))?;
    if let Some(config) = &recipe.tokenize {
        config.validate()?;
        curate::tokenize::encode::check_tokenizer(config)
            .map_err(|source| Error::PipelineTokenizer { file: args.recipe.clone(), source })?;
    }
    let threads = threads(args.threads)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| usage(e.to_string()))?;
    let names = FieldNames { text: recipe.text_field.clone(), id: recipe.id_field.clone(), raw_text: false };
    let out = &recipe.output.path;
    // Conditions are parsed, and checked against each source, before any work.
    let mut conditions = Vec::new();
    for (i, source) in recipe.sources.iter().enumerate() {
        let condition = match &source.condition {
            Some(text) => {
                let predicate = Predicate::parse(text).map_err(|e| usage(format!("{file}: source[{i}].where: {e}")))?;
                let condition = Arc::new(PolarsCondition::new(predicate));
                // The select step's own check: its sample of the input, its types.
                let plan = plan::plan(&source.path, None, 256 << 20)?;
                SelectStep::new(condition.clone())
                    .check_input(&plan, &names)
                    .map_err(|e| usage(format!("{file}: source[{i}] ({}): {e}", source.path)))?;
                Some(condition)
            }
            None => None,
        };
        conditions.push(condition);
    }

    let mut reports = Vec::new();
    for ((source, target), condition) in recipe.sources.iter().zip(&targets).zip(&conditions) {
        eprintln!("curate: counting the tokens of {} ({})", source.name, source.path);
        let counted = pool.install(|| count(source, condition.as_deref(), &names, &tokenizer, recipe.seed))?;
        let plan = choose(&counted, *target);
        for epoch in 0..plan.epochs + u64::from(plan.threshold.is_some()) {
            let sampled = (epoch == plan.epochs).then_some(plan.threshold).flatten();
            write_epoch(&recipe, source, condition.clone(), sampled, epoch, out, threads, args.progress)?;
        }
        reports.push(SourceReport {
            name: source.name.clone(),
            available_docs: counted.len() as u64,
            available_tokens: counted.iter().map(|(_, t)| t).sum(),
            intended_tokens: *target,
            intended_share: 0.0,
            epochs: plan.epochs,
            sampled_docs: plan.sampled_docs,
            sampled_tokens: plan.sampled_tokens,
            docs: plan.epochs * counted.len() as u64 + plan.sampled_docs,
            tokens: plan.epochs * counted.iter().map(|(_, t)| t).sum::<u64>() + plan.sampled_tokens,
            share: 0.0,
        });
    }
    let (intended, achieved): (u64, u64) = (targets.iter().sum(), reports.iter().map(|r| r.tokens).sum());
    for r in &mut reports {
        r.intended_share = r.intended_tokens as f64 / intended.max(1) as f64;
        r.share = r.tokens as f64 / achieved.max(1) as f64;
        eprintln!(
            "curate: {}: {} documents, {} tokens ({:.2}% of the mix; intended {} tokens, {:.2}%), {} whole epochs",
            r.name,
            r.docs,
            r.tokens,
            100.0 * r.share,
            r.intended_tokens,
            100.0 * r.intended_share,
            r.epochs
        );
    }
    let report = serde_json::json!({ "seed": recipe.seed, "tokens": achieved, "sources": reports });
    let path = out.join("mix.json");
    curate::io::atomic::write(&path, serde_json::to_string_pretty(&report).expect("serialisable").as_bytes())?;
    eprintln!("curate: mix report in {}", path.display());
    if let Some(config) = recipe.tokenize.clone() {
        let options = TokenizeOptions {
            output: config.path.as_ref().map_or_else(|| out.join("tokens"), PathBuf::from),
            config,
            input: out.join(CORPUS).display().to_string(),
            names: FieldNames { text: recipe.text_field.clone(), id: recipe.id_field.clone(), raw_text: false },
            threads,
            batch_size: 1000,
            progress: args.progress,
        };
        let shown = options.output.clone();
        return run_tokenize(&options, &shown);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_options(names: &FieldNames) -> ReadOptions {
    ReadOptions { names: names.clone(), batch_size: 1000, batch_bytes: 16 << 20 }
}

/// Each source's target in tokens; names must be distinct folder names.
fn targets(recipe: &Recipe) -> Result<Vec<u64>, String> {
    if recipe.sources.is_empty() {
        return Err("no [[source]]".into());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let weights: f64 = recipe.sources.iter().filter_map(|s| s.weight).sum();
    for (i, s) in recipe.sources.iter().enumerate() {
        let safe = !s.name.is_empty()
            && !s.name.starts_with('.')
            && s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !safe {
            return Err(format!(
                "source[{i}].name: {:?} must be letters, digits, '-', '_' or '.' (it names a folder)",
                s.name
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(format!("source[{i}].name: {:?} is taken", s.name));
        }
        out.push(match (s.weight, s.tokens) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "source[{i}]: give `weight` (with a top-level `total_tokens`) or `tokens`, one of them"
                ))
            }
            (None, Some(t)) => t,
            (Some(w), None) => {
                if !(w.is_finite() && w > 0.0) {
                    return Err(format!("source[{i}].weight: {w} is not a positive number"));
                }
                let Some(total) = recipe.total_tokens else {
                    return Err(format!("source[{i}].weight: weights need a top-level `total_tokens`"));
                };
                (total as f64 * w / weights).round() as u64
            }
        });
    }
    Ok(out)
}

/// A document's key: the order in which a source's documents are taken.
fn key(seed: u64, source: &str, id: &str) -> u64 {
    xxh3_64_with_seed(format!("{source}\u{0}{id}").as_bytes(), seed)
}

/// The key and tokens of every document of the source that meets its condition.
fn count(
    source: &Source,
    condition: Option<&PolarsCondition>,
    names: &FieldNames,
    tokenizer: &tokenizers::Tokenizer,
    seed: u64,
) -> Result<Vec<(u64, u64)>, Error> {
    let plan = plan::plan(&source.path, None, 256 << 20)?;
    let options = Arc::new(read_options(names));
    let failed: Mutex<Option<String>> = Mutex::new(None);
    let mut counted: Vec<(u64, u64)> = plan
        .units
        .par_iter()
        .flat_map_iter(|unit| {
            let mut out = Vec::new();
            let mut reader = read::open(&plan.files[unit.file], unit, options.clone());
            while let Some(batch) = reader.next_batch() {
                let docs: Vec<Doc> = batch.into_iter().flatten().collect();
                let keep: Vec<bool> = match condition {
                    None => vec![true; docs.len()],
                    Some(c) => {
                        let fields: Vec<&[(String, Box<serde_json::value::RawValue>)]> =
                            docs.iter().map(|d| d.fields.as_slice()).collect();
                        match c.evaluate(&fields) {
                            Ok(k) => k.into_iter().map(|k| k.unwrap_or(false)).collect(),
                            Err(e) => {
                                failed.lock().unwrap().get_or_insert(e.0);
                                return out;
                            }
                        }
                    }
                };
                for (doc, keep) in docs.iter().zip(keep) {
                    if keep {
                        let tokens = tokenizer.encode_fast(doc.text.as_str(), false).map_or(0, |e| e.len()) as u64;
                        out.push((key(seed, &source.name, &doc.id), tokens));
                    }
                }
            }
            out
        })
        .collect();
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(usage(format!("source {}: {e}", source.name)));
    }
    counted.sort_unstable();
    Ok(counted)
}

/// How a source meets its target.
struct Choice {
    epochs: u64,
    /// Documents with a key at most this are taken once more; `None`: none.
    threshold: Option<u64>,
    sampled_docs: u64,
    sampled_tokens: u64,
}

/// Whole epochs, then the prefix of the documents in key order whose
/// tokens come closest to what is left of the target.
fn choose(counted: &[(u64, u64)], target: u64) -> Choice {
    let total: u64 = counted.iter().map(|(_, t)| t).sum();
    if total == 0 {
        return Choice { epochs: 0, threshold: None, sampled_docs: 0, sampled_tokens: 0 };
    }
    let epochs = target / total;
    let rest = target - epochs * total;
    let (mut best, mut best_gap, mut sum) = (0usize, rest, 0u64);
    for (i, (k, t)) in counted.iter().enumerate() {
        sum += t;
        // Documents sharing a key (one id twice) are taken together.
        if counted.get(i + 1).is_some_and(|(next, _)| next == k) {
            continue;
        }
        let gap = sum.abs_diff(rest);
        if gap < best_gap {
            (best, best_gap) = (i + 1, gap);
        }
        if sum >= rest {
            break;
        }
    }
    if best == 0 {
        return Choice { epochs, threshold: None, sampled_docs: 0, sampled_tokens: 0 };
    }
    Choice {
        epochs,
        threshold: Some(counted[best - 1].0),
        sampled_docs: best as u64,
        sampled_tokens: counted[..best].iter().map(|(_, t)| t).sum(),
    }
}

/// The engine run of one epoch of a source: its condition, and for the
/// sampled epoch the documents whose key is at most the threshold.
#[allow(clippy::too_many_arguments)]
fn write_epoch(
    recipe: &Recipe,
    source: &Source,
    condition: Option<Arc<PolarsCondition>>,
    threshold: Option<u64>,
    epoch: u64,
    out: &Path,
    threads: usize,
    progress: ProgressMode,
) -> Result<(), Error> {
    let folder = out.join(CORPUS).join(&source.name).join(format!("epoch-{epoch}"));
    let mut pipeline =
        select_pipeline(&source.path, &folder.display().to_string(), &recipe.text_field, &recipe.id_field)?;
    pipeline.output.format = recipe.output.format;
    let mut steps: Vec<Box<dyn Step>> = Vec::new();
    if let (Some(text), Some(c)) = (&source.condition, condition) {
        pipeline.steps.push(select_spec("where", text));
        steps.push(Box::new(SelectStep::new(c)));
    }
    if let Some(threshold) = threshold {
        let mut options = toml::Table::new();
        options.insert("seed".into(), toml::Value::String(recipe.seed.to_string()));
        options.insert("threshold".into(), toml::Value::String(threshold.to_string()));
        pipeline.steps.push(StepSpec {
            name: "sample".into(),
            kind: "mix_sample".into(),
            mode: StepMode::Filter,
            options,
        });
        steps.push(Box::new(SampleStep { seed: recipe.seed, source: source.name.clone(), threshold }));
    }
    let report = executor::run_built(&pipeline, &RunOptions { task: Task::ALONE, threads, progress }, steps)?;
    let s = &report.task;
    eprintln!(
        "curate: {} epoch {epoch}: kept {} of {} documents in {}",
        source.name,
        s.kept_docs,
        s.input_docs,
        folder.display()
    );
    Ok(())
}

/// Keeps the documents whose key is at most the threshold: the sampled part
/// of a source.
struct SampleStep {
    seed: u64,
    source: String,
    threshold: u64,
}

impl Step for SampleStep {
    fn judge(&self, doc: &mut Doc, _: Mode<'_>) -> Outcome {
        if key(self.seed, &self.source, &doc.id) <= self.threshold {
            Outcome::Keep
        } else {
            Outcome::Drop("mix_not_sampled".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_takes_whole_epochs_then_the_closest_prefix_in_key_order() {
        let counted = [(1, 10), (2, 30), (3, 5), (4, 20)];
        let c = choose(&counted, 65 * 2 + 38);
        assert_eq!((c.epochs, c.threshold, c.sampled_tokens), (2, Some(2), 40));
        let c = choose(&counted, 12);
        assert_eq!((c.threshold, c.sampled_tokens), (Some(1), 10));
        let c = choose(&counted, 3);
        assert_eq!((c.epochs, c.threshold), (0, None), "no document is closer to 3 tokens than none");
        let c = choose(&[(7, 4), (7, 4), (9, 1)], 5);
        assert_eq!((c.threshold, c.sampled_docs, c.sampled_tokens), (Some(7), 2, 8), "one key, taken together");
    }
}
