//! `curate report`: one self-contained HTML file for a run's output folder
//! (the drop funnel, the distributions of annotated signals with their
//! thresholds, languages, document lengths, tokens, example documents per
//! reason) or for a training run's folder (its metrics over steps).
//!
//! Distributions are Polars' streaming aggregates over the Parquet shards,
//! one column at a time; examples are read with the engine's readers and
//! stop as soon as every reason has its examples. Neither holds the data in
//! memory, so a report's memory does not grow with the output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use curate::io::doc::{Doc, FieldNames};
use curate::io::plan;
use curate::io::read::{self, ReadOptions};
use curate::io::write::{REJECTED_REASON, REJECTED_STEP};
use curate::pipeline::executor::PIPELINE_FILE;
use curate::pipeline::registry;
use curate::pipeline::stats::Stats;
use curate_query::page::{Page, Section};
use curate_query::svg;
use curate_query::{lookup, ColumnKind, Distribution, Shards};
use serde_json::Value;

use super::{usage, Error};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A `curate run` (or `select`) output folder, or a training run's folder (with metrics.jsonl).
    pub folder: PathBuf,
    /// The HTML file to write (default: FOLDER/report.html).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Example documents shown per drop reason.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// Bins per histogram.
    #[arg(long, default_value_t = 40)]
    pub bins: usize,
}

pub fn report(args: ReportArgs) -> Result<ExitCode, Error> {
    let folder = &args.folder;
    let page = if folder.join("metrics.jsonl").is_file() {
        training_report(folder)?
    } else if folder.join("stats.json").is_file() {
        run_report(folder, &args)?
    } else {
        return Err(usage(format!(
            "{} holds neither a run's stats.json nor a training run's metrics.jsonl",
            folder.display()
        )));
    };
    let output = args.output.clone().unwrap_or_else(|| folder.join("report.html"));
    curate::io::atomic::write(&output, page.render().as_bytes())?;
    eprintln!("curate: report ({} charts) in {}", page.charts(), output.display());
    Ok(ExitCode::SUCCESS)
}

fn read_json(path: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| usage(format!("{}: not JSON: {e}", path.display())))
}

fn query(e: curate_query::QueryError) -> Error {
    Error::Usage(e.to_string())
}

/// The report of a run's output folder.
fn run_report(folder: &Path, args: &ReportArgs) -> Result<Page, Error> {
    let stats: Stats = serde_json::from_value(read_json(&folder.join("stats.json"))?)
        .map_err(|e| usage(format!("{}: not a curate stats.json: {e}", folder.join("stats.json").display())))?;
    let pipeline = read_json(&folder.join(".curate").join(PIPELINE_FILE)).ok();
    let text_field = pipeline.as_ref().and_then(|p| p["input"]["text_field"].as_str()).unwrap_or("text").to_owned();
    let id_field = pipeline.as_ref().and_then(|p| p["input"]["id_field"].as_str()).unwrap_or("id").to_owned();
    let tokens_dir = pipeline
        .as_ref()
        .and_then(|p| p["tokenize"]["path"].as_str())
        .map_or_else(|| folder.join("tokens"), PathBuf::from);

    let mut page = Page::new(&format!("curate report: {}", folder.display()));
    funnel(page.section("Documents"), &stats);

    let (parquet, jsonl) = shard_files(folder, &tokens_dir);
    if parquet.is_empty() && !jsonl.is_empty() {
        page.section("Distributions").note(
            "The output is JSON Lines; distributions are read from Parquet output (the default format). \
             `curate select OUT --where \"id IS NOT NULL\" --output OUT2` writes a Parquet copy.",
        );
    } else if !parquet.is_empty() {
        let shards = Shards::new(parquet);
        distributions(&mut page, &shards, &stats, pipeline.as_ref(), &text_field, args.bins)?;
    }
    if let Ok(tokens) = read_json(&tokens_dir.join("stats.json")) {
        tokens_section(page.section("Tokens"), &tokens);
    }
    let names = FieldNames { text: text_field, id: id_field, raw_text: false };
    examples(&mut page, folder, &tokens_dir, &stats, &names, args.examples)?;
    Ok(page)
}

/// Kept shards under the output folder (partitions included), leaving out
/// the rejected output, the token shards and the bookkeeping.
fn shard_files(folder: &Path, tokens: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    fn walk(dir: &Path, skip: &[PathBuf], parquet: &mut Vec<PathBuf>, jsonl: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') || skip.contains(&path) {
                continue;
            }
            if path.is_dir() {
                walk(&path, skip, parquet, jsonl);
            } else if name.ends_with(".parquet") {
                parquet.push(path);
            } else if name.ends_with(".jsonl.zst") {
                jsonl.push(path);
            }
        }
    }
    let skip = [folder.join("rejected"), folder.join("stats"), tokens.to_owned()];
    let (mut parquet, mut jsonl) = (Vec::new(), Vec::new());
    walk(folder, &skip, &mut parquet, &mut jsonl);
    (parquet, jsonl)
}

/// The funnel: documents left after each step, and what each dropped.
fn funnel(section: &mut Section, stats: &Stats) {
    section.table(
        &["input documents", "kept", "dropped", "errors", "input bytes", "kept text bytes", "units", "shards"],
        &[vec![
            stats.input_docs.to_string(),
            stats.kept_docs.to_string(),
            stats.dropped_docs.to_string(),
            stats.errors.docs.to_string(),
            stats.input_bytes.to_string(),
            stats.kept_text_bytes.to_string(),
            stats.units.to_string(),
            stats.output_files.to_string(),
        ]],
    );
    let mut left = vec![("input".to_owned(), stats.input_docs)];
    let mut rows = Vec::new();
    let mut reasons = Vec::new();
    for step in &stats.steps {
        left.push((format!("after {}", step.name), step.docs_in.saturating_sub(step.dropped)));
        let mut by_count: Vec<(&String, &u64)> = step.reasons.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let verb = if step.mode == "annotate" { "flagged" } else { "dropped" };
        for (reason, n) in &by_count {
            reasons.push((format!("{} {verb}: {reason}", step.name), **n));
        }
        let listed: Vec<String> = by_count.iter().map(|(r, n)| format!("{r} {n}")).collect();
        rows.push(vec![
            step.name.clone(),
            step.kind.clone(),
            step.mode.clone(),
            step.docs_in.to_string(),
            step.dropped.to_string(),
            listed.join(", "),
        ]);
    }
    left.push(("kept".into(), stats.kept_docs));
    section.chart(svg::bars("Documents left after each step", &left));
    if !reasons.is_empty() {
        section.chart(svg::bars("Reasons (dropped, or flagged by annotating steps)", &reasons));
    }
    section.table(&["step", "type", "mode", "documents in", "dropped", "reasons"], &rows);
    let errors: Vec<Vec<String>> = stats
        .errors
        .kinds
        .iter()
        .map(|(kind, occ)| vec![kind.to_string(), occ.count.to_string(), occ.examples.join("; ")])
        .collect();
    if !errors.is_empty() {
        section.table(&["error", "documents", "first at"], &errors);
    }
}

/// Histograms of every numeric column (annotated signals first, with the
/// thresholds their step was configured with), languages, and lengths.
fn distributions(
    page: &mut Page,
    shards: &Shards,
    stats: &Stats,
    pipeline: Option<&Value>,
    text_field: &str,
    bins: usize,
) -> Result<(), Error> {
    let columns = shards.columns().map_err(query)?;
    let thresholds = step_thresholds(pipeline);
    let numeric: Vec<&String> = columns.iter().filter(|(_, k)| *k == ColumnKind::Number).map(|(n, _)| n).collect();
    let is_signal = |name: &str| stats.steps.iter().any(|s| name.starts_with(&format!("{}.", s.name)));
    let (signals, others): (Vec<&String>, Vec<&String>) = numeric.into_iter().partition(|n| is_signal(n));

    let section = page.section("Annotated signals");
    if signals.is_empty() {
        section.note("No step annotated this output (mode = \"annotate\" adds `<step>.<signal>` columns).");
    }
    for name in signals {
        let marks: Vec<(f64, String)> = thresholds
            .get(name.as_str())
            .into_iter()
            .flatten()
            .map(|v| (*v, format!("threshold {}", svg::number(*v))))
            .collect();
        let values: Vec<f64> = marks.iter().map(|(v, _)| *v).collect();
        if let Some(d) = shards.distribution(name, bins, &values).map_err(query)? {
            let hi = d.lo + d.width * d.counts.len() as f64;
            let slack = (hi - d.lo).abs() * 1e-9;
            let off: Vec<String> =
                values.iter().filter(|v| !(d.lo - slack..=hi + slack).contains(*v)).map(|v| svg::number(*v)).collect();
            let name = if off.is_empty() {
                name.clone()
            } else {
                format!("{name} [threshold {} off the chart]", off.join(", "))
            };
            section.chart(histogram(&name, &d, &marks));
        }
    }
    let section = page.section("Other numeric fields");
    for name in others {
        if let Some(d) = shards.distribution(name, bins, &[]).map_err(query)? {
            section.chart(histogram(name, &d, &[]));
        }
    }
    let section = page.section("Languages and length");
    if columns.iter().any(|(n, k)| n == "language" && *k == ColumnKind::String) {
        let counts = shards.value_counts("language", 30).map_err(query)?;
        section.chart(svg::bars("Documents per language", &counts));
    }
    if columns.iter().any(|(n, k)| n == text_field && *k == ColumnKind::String) {
        if let Some(d) = shards.lengths(text_field, bins).map_err(query)? {
            section.chart(histogram(&format!("{text_field}: length in characters"), &d, &[]));
        }
    }
    Ok(())
}

fn histogram(name: &str, d: &Distribution, marks: &[(f64, String)]) -> String {
    let title = format!(
        "{name} (n {}, nulls {}, min {}, mean {}, max {})",
        d.count,
        d.nulls,
        svg::number(d.min),
        svg::number(d.mean),
        svg::number(d.max)
    );
    svg::histogram(&title, d.lo, d.width, &d.counts, d.above, marks)
}

/// `<step>.<signal>` → the bounds the step's options put on the signal.
fn step_thresholds(pipeline: Option<&Value>) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let steps = pipeline.and_then(|p| p["steps"].as_array()).cloned().unwrap_or_default();
    for step in steps {
        let (Some(name), Some(kind)) = (step["name"].as_str(), step["kind"].as_str()) else { continue };
        let options: toml::Table = serde_json::from_value(step["options"].clone()).unwrap_or_default();
        for (signal, value) in registry::thresholds(kind, &options) {
            out.entry(format!("{name}.{signal}")).or_default().push(value);
        }
    }
    out
}

fn tokens_section(section: &mut Section, tokens: &Value) {
    let n = |k: &str| tokens[k].as_f64().map(svg::number).unwrap_or_default();
    section.table(
        &["documents", "tokens", "characters per token", "skipped (empty)"],
        &[vec![n("written_docs"), n("tokens"), n("chars_per_token"), n("skipped_empty_docs")]],
    );
    if let Some(buckets) = tokens["tokens_per_doc"].as_array() {
        let rows: Vec<(String, u64)> =
            buckets.iter().map(|b| (format!("{}–{}", b["min"], b["max"]), b["docs"].as_u64().unwrap_or(0))).collect();
        section.chart(svg::bars("Documents by tokens per document", &rows));
    }
}

/// Example documents for each reason: dropped ones from `rejected/`, and
/// those an annotating step flagged from the kept output.
fn examples(
    page: &mut Page,
    folder: &Path,
    tokens: &Path,
    stats: &Stats,
    names: &FieldNames,
    per: usize,
) -> Result<(), Error> {
    if per == 0 {
        return Ok(());
    }
    let mut wanted: Vec<(String, String)> = Vec::new();
    let mut flagged_steps = Vec::new();
    for step in &stats.steps {
        for reason in step.reasons.keys() {
            wanted.push((step.name.clone(), reason.clone()));
        }
        if step.mode == "annotate" {
            flagged_steps.push(step.name.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut found: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let full = |found: &BTreeMap<(String, String), Vec<(String, String)>>| {
        wanted.iter().all(|k| found.get(k).is_some_and(|v| v.len() >= per))
    };
    let rejected = folder.join("rejected");
    if rejected.is_dir() {
        scan(&rejected, names, &mut |doc| {
            let field = |k: &str| lookup(&doc.fields, k).and_then(|v| v.as_str().map(str::to_owned));
            if let (Some(step), Some(reason)) = (field(REJECTED_STEP), field(REJECTED_REASON)) {
                let slot = found.entry((step, reason)).or_default();
                if slot.len() < per {
                    slot.push((doc.id.clone(), doc.text.clone()));
                }
            }
            !full(&found)
        })?;
    }
    if !flagged_steps.is_empty() && !full(&found) {
        let (parquet, jsonl) = shard_files(folder, tokens);
        for shard in parquet.into_iter().chain(jsonl) {
            let mut more = true;
            scan(&shard, names, &mut |doc| {
                for step in &flagged_steps {
                    let Some(reason) = lookup(&doc.fields, step).and_then(|v| v.as_str().map(str::to_owned)) else {
                        continue;
                    };
                    if reason != "keep" {
                        let slot = found.entry((step.clone(), reason)).or_default();
                        if slot.len() < per {
                            slot.push((doc.id.clone(), doc.text.clone()));
                        }
                    }
                }
                more = !full(&found);
                more
            })?;
            if !more {
                break;
            }
        }
    }
    let section = page.section("Examples by reason");
    if found.is_empty() {
        section.note("No examples: the run kept no rejected output (`rejected = true`) and no step annotated.");
    }
    for ((step, reason), docs) in &found {
        for (id, text) in docs {
            let shown: String = text.chars().take(600).collect();
            let more = if text.chars().count() > 600 { " (first 600 characters)" } else { "" };
            section.example(&format!("{step}: {reason} — {id}{more}"), &shown);
        }
    }
    Ok(())
}

/// Reads every document under `input` in order until `each` returns false.
fn scan(input: &Path, names: &FieldNames, each: &mut dyn FnMut(&Doc) -> bool) -> Result<(), Error> {
    let plan = plan::plan(&input.to_string_lossy(), None, 256 << 20)?;
    let options = Arc::new(ReadOptions { names: names.clone(), batch_size: 256, batch_bytes: 16 << 20 });
    for unit in &plan.units {
        let mut reader = read::open(&plan.files[unit.file], unit, options.clone());
        while let Some(batch) = reader.next_batch() {
            for doc in batch.into_iter().flatten() {
                if !each(&doc) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// One metric's points (step, value): by rank for per-rank values, under
/// `None` for the run's own.
type Series = BTreeMap<Option<usize>, Vec<(f64, f64)>>;

/// The report of a training run's folder: its metrics over steps.
fn training_report(folder: &Path) -> Result<Page, Error> {
    let path = folder.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    let mut first: Option<Value> = None;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line)
            .map_err(|e| usage(format!("{}: line {}: not JSON: {e}", path.display(), n + 1)))?;
        let Some(step) = record["step"].as_f64() else {
            first.get_or_insert(record);
            continue;
        };
        let Some(fields) = record.as_object() else { continue };
        for (key, value) in fields {
            if key == "step" {
                continue;
            }
            match value {
                Value::Number(v) => series
                    .entry(key.clone())
                    .or_default()
                    .entry(None)
                    .or_default()
                    .push((step, v.as_f64().unwrap_or(f64::NAN))),
                // Per-rank values (peak memory of each rank).
                Value::Array(values) if values.len() > 1 || key.ends_with("_bytes") => {
                    for (rank, v) in values.iter().enumerate() {
                        if let Some(v) = v.as_f64() {
                            series.entry(key.clone()).or_default().entry(Some(rank)).or_default().push((step, v));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut page = Page::new(&format!("curate training report: {}", folder.display()));
    let section = page.section("Training");
    if let Some(first) = first {
        let rows: Vec<Vec<String>> = first
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect();
        if !rows.is_empty() {
            section.table(&["setting", "value"], &rows);
        }
    }
    let steps = series.get("loss").and_then(|s| s.get(&None)).map_or(0, Vec::len);
    section.note(&format!("{steps} logged steps from {}", path.display()));
    // Loss and its validation counterpart share a chart.
    let wanted: &[(&str, &[&str])] = &[
        ("Loss", &["loss", "eval_loss", "val_loss"]),
        ("Learning rate", &["lr"]),
        ("Gradient norm", &["grad_norm"]),
        ("Tokens per second", &["tokens_per_s"]),
        ("Model FLOPs utilisation", &["mfu"]),
        ("Peak memory per rank, bytes", &["peak_rss_bytes", "peak_cuda_bytes"]),
    ];
    for (title, keys) in wanted {
        let mut lines = Vec::new();
        for key in *keys {
            for (rank, points) in series.get(*key).into_iter().flatten() {
                if points.iter().any(|(_, y)| y.is_finite()) {
                    let name = rank.map_or_else(|| (*key).to_owned(), |r| format!("{key} rank {r}"));
                    lines.push((name, points.clone()));
                }
            }
        }
        if !lines.is_empty() {
            section.chart(svg::lines(title, &lines));
        }
    }
    if page.charts() == 0 {
        return Err(usage(format!("{}: no metric over steps to chart", path.display())));
    }
    Ok(page)
}
