//! Running one task of a pipeline: plan the input, skip finished units, and
//! process the rest, several units at a time, each batch spread over the
//! rayon pool.
//!
//! Determinism: a unit's documents are read, judged and written in input
//! order; parallel work inside a batch is order-preserving; each unit writes
//! its own shards. So the output depends on the input and the pipeline only,
//! not on threads, tasks, or on where a previous run was killed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_128;

use super::progress::{Progress, ProgressMode};
use super::registry;
use super::state::{RunDir, StateError};
use super::stats::Stats;
use super::step::{Outcome, Step};
use super::task::Task;
use crate::config::{InputFormat, OnError, OutputFormat, Pipeline, StepMode};
use crate::doc::{Doc, ErrorKind, FieldNames};
use crate::io::plan::{self, Plan, PlanError, Unit};
use crate::io::read::{self, ReadOptions};
use crate::io::write::{self, PartitionedWriter, Prepared, WriterOptions, REJECTED_REASON, REJECTED_STEP};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Setup(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    /// A bad document with `on_error = "fail"`.
    #[error("{location}: {kind}: {message}")]
    BadDocument { location: String, kind: &'static str, message: String },
    #[error("stats do not add up ({0}); this is a bug in curate")]
    Accounting(String),
}

pub struct RunOptions {
    pub task: Task,
    pub threads: usize,
    pub progress: ProgressMode,
}

pub struct TaskReport {
    pub task: Stats,
    /// The whole run's stats, once every task is done.
    pub merged: Option<(Stats, PathBuf)>,
    /// The task had finished in an earlier run.
    pub already_done: bool,
    pub ignored_files: Vec<PathBuf>,
}

/// Everything a unit worker needs, built once per task.
struct Context<'a> {
    pipeline: &'a Pipeline,
    plan: &'a Plan,
    run_dir: &'a RunDir,
    steps: Vec<Box<dyn Step>>,
    read: Arc<ReadOptions>,
    kept: Arc<WriterOptions>,
    rejected: Option<Arc<WriterOptions>>,
    progress: Progress,
    abort: AtomicBool,
}

pub fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<TaskReport, RunError> {
    let started = Instant::now();
    let task = options.task;
    let plan = plan::plan(&pipeline.input.path, pipeline.input.format, pipeline.input.split_bytes.0)?;
    let out = PathBuf::from(&pipeline.output.path);
    // Output inside an input folder would be read back as input by the next
    // run; refused before anything is created there.
    let input = Path::new(&pipeline.input.path);
    if let (true, Ok(input), Ok(output)) = (input.is_dir(), std::path::absolute(input), std::path::absolute(&out)) {
        if output.starts_with(&input) {
            return Err(RunError::Setup(format!(
                "the output folder {} is inside the input folder {}",
                out.display(),
                pipeline.input.path
            )));
        }
    }
    let run_dir = RunDir::open(&out)?;
    run_dir.claim(&fingerprint(pipeline, &plan), plan.units.len(), task)?;

    if let Some(stats) = run_dir.task_done(task) {
        let merged = merge_if_complete(&run_dir, task)?;
        return Ok(TaskReport { task: stats, merged, already_done: true, ignored_files: plan.ignored });
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .thread_name(|i| format!("curate-{i}"))
        .build()
        .map_err(|e| RunError::Setup(format!("cannot start {} threads: {e}", options.threads)))?;
    let names = FieldNames { text: pipeline.input.text_field.clone(), id: pipeline.input.id_field.clone() };
    let read = Arc::new(ReadOptions {
        names: names.clone(),
        batch_size: pipeline.input.batch_size,
        batch_bytes: usize::try_from(pipeline.input.batch_bytes.0).unwrap_or(usize::MAX),
    });
    let steps = pipeline
        .steps
        .iter()
        .map(|s| {
            registry::build(&s.kind, &s.options).map_err(|e| RunError::Setup(format!("step {}: {}", s.name, e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (step, spec) in steps.iter().zip(&pipeline.steps) {
        step.check_input(&plan, &names).map_err(|e| RunError::Setup(format!("step {}: {e}", spec.name)))?;
    }
    let schema = match pipeline.output.format {
        OutputFormat::Parquet => {
            let schema = pool.install(|| output_schema(&plan, &read))?;
            Some(write::with_annotation_fields(&schema, &annotation_columns(pipeline, &steps)))
        }
        OutputFormat::Jsonl => None,
    };
    let mine: Vec<&Unit> = plan.units.iter().filter(|u| task.owns(u.index)).collect();
    let workers = options.threads.min(mine.len()).max(1);
    let writer_options = |schema: Option<SchemaRef>| {
        Arc::new(WriterOptions {
            format: pipeline.output.format,
            shard_bytes: pipeline.output.shard_bytes.0,
            row_group_rows: pipeline.output.row_group_rows,
            row_group_bytes: usize::try_from(pipeline.output.row_group_bytes.0).unwrap_or(usize::MAX),
            level: pipeline.output.compression_level,
            compress_threads: (options.threads / workers).max(1) as u32,
            schema,
            text_field: names.text.clone(),
        })
    };
    run_dir.remove_stale_temps(&out, task);
    run_dir.remove_stale_temps(&out.join("rejected"), task);
    if pipeline.output.partition_by.is_some() {
        for entry in std::fs::read_dir(&out).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                run_dir.remove_stale_temps(&entry.path(), task);
            }
        }
    }

    let ctx = Context {
        pipeline,
        plan: &plan,
        run_dir: &run_dir,
        steps,
        read,
        kept: writer_options(schema.clone()),
        rejected: pipeline.output.rejected.then(|| writer_options(schema.as_deref().map(write::with_rejection_fields))),
        progress: Progress::start(mine.iter().map(|u| u.bytes).sum(), options.progress),
        abort: AtomicBool::new(false),
    };

    let results = super::workers::run_units(mine.len(), workers, &pool, &ctx.abort, |i| process_unit(&ctx, mine[i]));
    let Context { progress, .. } = ctx;
    progress.finish();

    let mut stats =
        Stats::for_steps(pipeline.steps.iter().map(|s| (s.name.as_str(), s.kind.as_str(), s.mode.as_str())));
    for result in results {
        match result {
            Some(Ok(unit_stats)) => stats.merge(&unit_stats),
            Some(Err(e)) => return Err(e),
            // Not started because an earlier unit failed; that failure is returned above.
            None => {}
        }
    }
    stats.wall_seconds = started.elapsed().as_secs_f64();
    stats.check().map_err(RunError::Accounting)?;
    run_dir.mark_task(task, &stats)?;
    let merged = merge_if_complete(&run_dir, task)?;
    Ok(TaskReport { task: stats, merged, already_done: false, ignored_files: plan.ignored })
}

fn merge_if_complete(run_dir: &RunDir, task: Task) -> Result<Option<(Stats, PathBuf)>, RunError> {
    match run_dir.merged(task.world) {
        Ok(stats) => {
            stats.check().map_err(RunError::Accounting)?;
            let path = run_dir.write_stats(&stats, task)?;
            Ok(Some((stats, path)))
        }
        Err(_) => Ok(None),
    }
}

/// What the output folder holds: the pipeline's settings that shape the
/// output, and the input's files and units. Threads, ranks and paths are
/// left out: they may change between a run and its resumption.
fn fingerprint(pipeline: &Pipeline, plan: &Plan) -> String {
    let mut shaping = serde_json::to_value(pipeline).expect("serialisable");
    shaping["input"]["path"] = serde_json::Value::Null;
    shaping["output"]["path"] = serde_json::Value::Null;
    shaping["run"] = serde_json::Value::Null;
    // Tokenization reads the finished output; it has its own fingerprint.
    shaping["tokenize"] = serde_json::Value::Null;
    let both = serde_json::json!({ "pipeline": shaping, "plan": plan });
    format!("{:032x}", xxh3_128(both.to_string().as_bytes()))
}

/// How many input files are sampled to infer a Parquet output schema.
const SCHEMA_SAMPLE_FILES: usize = 16;

/// The Parquet output's schema, the same for every shard of the run: when
/// every input is Parquet, the first file's own schema (exact types);
/// otherwise one inferred from the first batch of each of the first
/// [`SCHEMA_SAMPLE_FILES`] files, so that fields that only some files have
/// are columns too.
fn output_schema(plan: &Plan, read: &Arc<ReadOptions>) -> Result<SchemaRef, RunError> {
    let names = &read.names;
    if plan.files.iter().all(|f| f.format == InputFormat::Parquet) {
        let first = &plan.files[0];
        let builder = std::fs::File::open(&first.path)
            .map_err(|e| e.to_string())
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()));
        return match builder {
            Ok(b) => Ok(write::schema_from_parquet(b.schema(), &names.text, &names.id)),
            Err(e) => Err(RunError::Setup(format!(
                "{}: cannot read the Parquet schema for the output: {e}",
                first.path.display()
            ))),
        };
    }
    let mut sample = Vec::new();
    let mut sampled = std::collections::HashSet::new();
    for unit in &plan.units {
        if sampled.len() == SCHEMA_SAMPLE_FILES {
            break;
        }
        if !sampled.insert(unit.file) {
            continue;
        }
        let mut reader = read::open(&plan.files[unit.file], unit, read.clone());
        if let Some(batch) = reader.next_batch() {
            sample.extend(batch.iter().filter_map(|r| r.as_ref().ok()).map(|d| encode(d, &names.text, &[])));
        }
    }
    write::infer_schema(&sample, &names.text, &names.id)
        .map_err(|e| RunError::Setup(format!("cannot infer an output schema: {e}")))
}

/// The columns steps add: metadata fields (the language), and in annotate
/// mode the verdict, then each signal.
fn annotation_columns(pipeline: &Pipeline, steps: &[Box<dyn Step>]) -> Vec<(String, bool)> {
    let mut columns = Vec::new();
    for (spec, step) in pipeline.steps.iter().zip(steps) {
        columns.extend(step.metadata_fields().iter().cloned());
        if spec.mode == StepMode::Annotate {
            columns.push((spec.name.clone(), false));
            columns.extend(step.signal_names().iter().map(|s| (format!("{}.{s}", spec.name), true)));
        }
    }
    columns
}

/// Runs a step in annotate mode on one document: adds `<step>` (`"keep"` or
/// the reason) and `<step>.<signal>` fields. Returns the reason it would
/// have dropped the document for.
fn annotate(step: &dyn Step, name: &str, doc: &mut Doc) -> Option<Cow<'static, str>> {
    let mut signals = Vec::with_capacity(step.signal_names().len());
    let outcome = step.annotate(doc, &mut signals);
    let verdict = match &outcome {
        Outcome::Keep => "keep",
        Outcome::Drop(reason) => reason.as_ref(),
    };
    let raw = |json: String| RawValue::from_string(json).expect("serde_json writes JSON");
    doc.fields.push((name.to_owned(), raw(serde_json::to_string(verdict).expect("a string serialises"))));
    for (signal, value) in step.signal_names().iter().zip(signals) {
        // JSON has no NaN or infinity: a signal that is not a number is null.
        let json =
            if value.is_finite() { serde_json::to_string(&value).expect("a number serialises") } else { "null".into() };
        doc.fields.push((format!("{name}.{signal}"), raw(json)));
    }
    match outcome {
        Outcome::Keep => None,
        Outcome::Drop(reason) => Some(reason),
    }
}

fn encode(doc: &Doc, text_field: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.text.len() + 64);
    doc.write_json(&mut out, text_field, extra);
    out
}

/// Batches written by this process, for the test hook below.
static BATCHES_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Test hook: with `CURATE_TEST_PAUSE_AFTER_BATCHES=N`, the writer that
/// writes the N-th batch (kept and rejected writers count together) stops
/// once that batch is in its temporary file, says so on stderr and waits
/// forever, so that a test can SIGKILL the process with a shard half
/// written. Costs one env lookup per batch.
fn pause_for_tests() {
    let Some(limit) = std::env::var("CURATE_TEST_PAUSE_AFTER_BATCHES").ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    if BATCHES_WRITTEN.fetch_add(1, Ordering::SeqCst) + 1 == limit {
        eprintln!("curate: paused for test after {limit} batches");
        loop {
            std::thread::park();
        }
    }
}

/// The sending end of a writer thread, and the thread, which returns the
/// finished shards (not yet committed) and its seconds of work.
type WriterThread<'scope> =
    (SyncSender<(String, Prepared)>, ScopedJoinHandle<'scope, std::io::Result<(Vec<PathBuf>, f64)>>);

/// Writes on its own thread, one batch behind the judging, so that
/// compression overlaps the reading and judging of the next batch. The
/// channel holds one batch: memory stays bounded.
fn spawn_writer<'scope>(scope: &'scope Scope<'scope, '_>, mut writer: PartitionedWriter) -> WriterThread<'scope> {
    let (tx, rx) = sync_channel::<(String, Prepared)>(1);
    let handle = scope.spawn(move || {
        let mut seconds = 0.0;
        for (partition, batch) in rx {
            let t = Instant::now();
            writer.write(&partition, batch)?;
            seconds += t.elapsed().as_secs_f64();
            pause_for_tests();
        }
        let t = Instant::now();
        let paths = writer.finish()?;
        Ok((paths, seconds + t.elapsed().as_secs_f64()))
    });
    (tx, handle)
}

/// Test hook: with `CURATE_TEST_PANIC_ON=MARK`, a step panics on every
/// document whose text contains MARK, so that tests can check that a
/// failing step costs one document, not the run.
fn panic_for_tests(text: &str) {
    static MARK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(mark) = MARK.get_or_init(|| std::env::var("CURATE_TEST_PANIC_ON").ok().filter(|m| !m.is_empty())) {
        if text.contains(mark.as_str()) {
            panic!("test panic on {mark:?}");
        }
    }
}

fn process_unit(ctx: &Context, unit: &Unit) -> Result<Stats, RunError> {
    if let Some(stats) = ctx.run_dir.unit_done(unit.index) {
        ctx.progress.add(unit.bytes, stats.input_docs);
        return Ok(stats);
    }
    let file = &ctx.plan.files[unit.file];
    let mut stats =
        Stats::for_steps(ctx.pipeline.steps.iter().map(|s| (s.name.as_str(), s.kind.as_str(), s.mode.as_str())));
    stats.units = 1;
    stats.input_bytes = unit.bytes;
    // An unreadable file also has size 0 in the plan; it is reported as an error.
    if file.size == 0 && file.path.metadata().is_ok() {
        stats.warning("empty_file", || file.path.display().to_string());
    }
    let stem = format!("part-{:06}", unit.index);
    let out = &ctx.run_dir.out;
    let rejected_dir = out.join("rejected");
    let write_err = |dir: &Path| {
        let path = dir.join(format!("{stem}-*")).display().to_string();
        move |source| RunError::Write { path, source }
    };

    let (judged, kept, rejected) = std::thread::scope(|scope| {
        let (kept_tx, kept_thread) = spawn_writer(scope, PartitionedWriter::new(out, stem.clone(), ctx.kept.clone()));
        let rejected = ctx
            .rejected
            .as_ref()
            .map(|o| spawn_writer(scope, PartitionedWriter::new(&rejected_dir, stem.clone(), o.clone())));
        let (rejected_tx, rejected_thread) = rejected.unzip();
        let judged = judge_unit(ctx, unit, &mut stats, &kept_tx, rejected_tx.as_ref());
        drop((kept_tx, rejected_tx));
        let kept = kept_thread.join().expect("a writer thread does not panic");
        let rejected = rejected_thread.map(|t| t.join().expect("a writer thread does not panic"));
        (judged, kept, rejected)
    });
    // A writer's own error explains a judging that stopped because the writer did.
    let (kept_paths, kept_seconds) = kept.map_err(write_err(out))?;
    let (rejected_paths, rejected_seconds) =
        rejected.transpose().map_err(write_err(&rejected_dir))?.unwrap_or_default();
    match judged? {
        Judged::Complete => {}
        Judged::Abandoned => return Ok(Stats::default()),
    }
    write::commit(&kept_paths).map_err(write_err(out))?;
    write::commit(&rejected_paths).map_err(write_err(&rejected_dir))?;
    stats.write_seconds += kept_seconds + rejected_seconds;
    stats.output_files = kept_paths.len() as u64;
    stats.check().map_err(RunError::Accounting)?;
    ctx.run_dir.mark_unit(unit.index, &stats)?;
    Ok(stats)
}

/// What became of a document in the steps.
#[derive(Clone)]
enum Fate {
    Alive,
    Dropped(usize, Cow<'static, str>),
    /// The step at this index panicked on the document.
    Failed(usize, String),
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    format!("the step failed on this document: {}", text.unwrap_or_else(|| "unknown panic".into()))
}

enum Judged {
    Complete,
    /// Another unit failed the run, or a writer stopped; nothing is committed.
    Abandoned,
}

/// Reads the unit batch by batch, runs the steps, counts, and hands the
/// kept and rejected documents to the writers.
fn judge_unit(
    ctx: &Context,
    unit: &Unit,
    stats: &mut Stats,
    kept_tx: &SyncSender<(String, Prepared)>,
    rejected_tx: Option<&SyncSender<(String, Prepared)>>,
) -> Result<Judged, RunError> {
    let pipeline = ctx.pipeline;
    let file = &ctx.plan.files[unit.file];
    let text_field = ctx.read.names.text.as_str();
    let fail_fast = pipeline.run.on_error == OnError::Fail;
    let step_names: Vec<&str> = pipeline.steps.iter().map(|s| s.name.as_str()).collect();
    let mut reader = read::open(file, unit, ctx.read.clone());
    let mut reported_bytes = 0;
    let mut next_doc = 0u32;
    loop {
        let t_read = Instant::now();
        let Some(records) = reader.next_batch() else { break };
        stats.read_seconds += t_read.elapsed().as_secs_f64();
        if ctx.abort.load(Ordering::Relaxed) {
            return Ok(Judged::Abandoned);
        }
        let mut docs = Vec::with_capacity(records.len());
        for record in records {
            match record {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    let location = || read::describe(e.at, file, unit);
                    if fail_fast {
                        return Err(RunError::BadDocument {
                            location: location(),
                            kind: e.error.kind.as_str(),
                            message: e.error.message,
                        });
                    }
                    stats.input_docs += e.count;
                    stats.error(e.error.kind.as_str(), e.count, || format!("{}: {}", location(), e.error.message));
                }
            }
        }
        stats.input_docs += docs.len() as u64;
        stats.input_text_bytes += docs.iter().map(|d| d.text.len() as u64).sum::<u64>();
        for doc in &mut docs {
            doc.origin = (unit.index as u32, next_doc);
            next_doc += 1;
        }

        // Steps run one after the other over the batch (step-major), which
        // times each step and keeps its code hot in cache.
        let mut fate: Vec<Fate> = vec![Fate::Alive; docs.len()];
        for (i, step) in ctx.steps.iter().enumerate() {
            let t = Instant::now();
            stats.steps[i].docs_in += fate.iter().filter(|f| matches!(f, Fate::Alive)).count() as u64;
            let name = pipeline.steps[i].name.as_str();
            let annotating = pipeline.steps[i].mode == StepMode::Annotate;
            let counting = !annotating && step.sums_signals();
            let results: Vec<(Option<Cow<'static, str>>, Vec<f64>)> = docs
                .par_iter_mut()
                .zip(fate.par_iter_mut())
                .map(|(doc, f)| {
                    let mut signals = Vec::new();
                    if !matches!(f, Fate::Alive) {
                        return (None, signals);
                    }
                    // A step that panics on one document costs that document
                    // (counted as an error), not the run.
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        panic_for_tests(&doc.text);
                        if annotating {
                            annotate(step.as_ref(), name, doc).map_or(Outcome::Keep, Outcome::Drop)
                        } else if counting {
                            step.process_counting(doc, &mut signals)
                        } else {
                            step.process(doc)
                        }
                    }));
                    let flagged = match outcome {
                        Ok(Outcome::Keep) => None,
                        Ok(Outcome::Drop(reason)) if annotating => Some(reason),
                        Ok(Outcome::Drop(reason)) => {
                            *f = Fate::Dropped(i, reason);
                            None
                        }
                        Err(panic) => {
                            *f = Fate::Failed(i, panic_message(panic));
                            None
                        }
                    };
                    (flagged, signals)
                })
                .collect();
            for (flagged, signals) in results {
                if let Some(reason) = flagged {
                    *stats.steps[i].reasons.entry(reason.into_owned()).or_default() += 1;
                }
                for (signal, value) in step.signal_names().iter().zip(signals) {
                    *stats.steps[i].totals.entry((*signal).to_owned()).or_default() += value;
                }
            }
            stats.steps[i].seconds += t.elapsed().as_secs_f64();
        }
        for (doc, f) in docs.iter().zip(&fate) {
            match f {
                Fate::Alive => {}
                Fate::Dropped(step, reason) => {
                    let s = &mut stats.steps[*step];
                    s.dropped += 1;
                    *s.reasons.entry(reason.to_string()).or_default() += 1;
                    stats.dropped_docs += 1;
                }
                Fate::Failed(step, message) => {
                    let location =
                        || format!("{}: document {:?}: step {}", file.path.display(), doc.id, step_names[*step]);
                    if fail_fast {
                        return Err(RunError::BadDocument {
                            location: location(),
                            kind: ErrorKind::StepFailed.as_str(),
                            message: message.clone(),
                        });
                    }
                    stats.error(ErrorKind::StepFailed.as_str(), 1, || format!("{}: {message}", location()));
                }
            }
        }

        let t_encode = Instant::now();
        let want_rejected = rejected_tx.is_some();
        let encoded: Vec<Option<Vec<u8>>> = docs
            .par_iter()
            .zip(fate.par_iter())
            .map(|(doc, f)| match f {
                Fate::Alive => Some(encode(doc, text_field, &[])),
                Fate::Dropped(step, reason) => want_rejected
                    .then(|| encode(doc, text_field, &[(REJECTED_STEP, step_names[*step]), (REJECTED_REASON, reason)])),
                Fate::Failed(..) => None,
            })
            .collect();
        let (mut kept, mut kept_bytes, mut rejected_bytes) = (Vec::new(), Vec::new(), Vec::new());
        for ((doc, f), bytes) in docs.iter().zip(&fate).zip(encoded) {
            match (f, bytes) {
                (Fate::Alive, Some(b)) => {
                    kept.push(doc);
                    kept_bytes.push(b);
                }
                (Fate::Dropped(..), Some(b)) => rejected_bytes.push(b),
                _ => {}
            }
        }

        // Kept documents by partition (one, "", without output.partition_by),
        // each in input order.
        let mut partitions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, doc) in kept.iter().enumerate() {
            let name = match &pipeline.output.partition_by {
                None => String::new(),
                Some(field) => write::partition_name(doc.fields.iter().find(|(k, _)| k == field).map(|(_, v)| v.get())),
            };
            partitions.entry(name).or_default().push(i);
        }
        let mut kept_bytes: Vec<Option<Vec<u8>>> = kept_bytes.into_iter().map(Some).collect();
        for (partition, members) in partitions {
            let bytes =
                members.iter().map(|&i| kept_bytes[i].take().expect("each document in one partition")).collect();
            let (prepared, misfits) = ctx.kept.prepare(bytes);
            let mut misfit = misfits.iter().peekable();
            for (j, &i) in members.iter().enumerate() {
                let doc = kept[i];
                if misfit.peek().is_some_and(|(m, _)| *m == j) {
                    let (_, why) = misfit.next().expect("peeked");
                    let location = || format!("{}: document {:?}", file.path.display(), doc.id);
                    if fail_fast {
                        return Err(RunError::BadDocument {
                            location: location(),
                            kind: ErrorKind::OutputSchema.as_str(),
                            message: why.clone(),
                        });
                    }
                    stats.error(ErrorKind::OutputSchema.as_str(), 1, || format!("{}: {why}", location()));
                } else {
                    stats.kept_docs += 1;
                    stats.kept_text_bytes += doc.text.len() as u64;
                    if pipeline.output.partition_by.is_some() {
                        *stats.partitions.entry(partition.clone()).or_default() += 1;
                    }
                }
            }
            if prepared.is_some_and(|p| kept_tx.send((partition, p)).is_err()) {
                return Ok(Judged::Abandoned);
            }
        }
        if let (Some(tx), Some(options)) = (rejected_tx, ctx.rejected.as_ref()) {
            let (prepared, misfits) = options.prepare(rejected_bytes);
            for (_, why) in misfits {
                stats.warning("rejected_not_written", || format!("{}: {why}", file.path.display()));
            }
            if prepared.is_some_and(|p| tx.send((String::new(), p)).is_err()) {
                return Ok(Judged::Abandoned);
            }
        }
        stats.write_seconds += t_encode.elapsed().as_secs_f64();

        let read_so_far = reader.bytes_read().min(unit.bytes);
        ctx.progress.add(read_so_far.saturating_sub(reported_bytes), docs.len() as u64);
        reported_bytes = reported_bytes.max(read_so_far);
    }
    ctx.progress.add(unit.bytes.saturating_sub(reported_bytes), 0);
    Ok(Judged::Complete)
}
