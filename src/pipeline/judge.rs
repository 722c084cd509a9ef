//! The work of `curate run` on one unit of input: read it batch by batch,
//! run the steps, account for every document, and hand the kept and
//! rejected documents to writer threads; publish the shards once the unit
//! is whole. Each of those is one method of [`Judge`], read top to bottom.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::value::RawValue;

use super::config::{InputFormat, OnError, OutputFormat, Pipeline, StepMode};
use super::executor::RunError;
use super::schema;
use super::stats::Stats;
use crate::io::doc::{Doc, ErrorKind, FieldNames, Place};
use crate::io::plan::{InputFile, Plan, Unit};
use crate::io::read::{self, ReadOptions, Record};
use crate::io::write::{self, PartitionedWriter, Prepared, WriterOptions, REJECTED_REASON, REJECTED_STEP};
use crate::runtime::hooks;
use crate::runtime::progress::UnitProgress;
use crate::step::{JudgeError, Mode, Outcome, Step};

/// Everything the work on a unit needs, built once per task.
pub(super) struct Judge<'a> {
    pipeline: &'a Pipeline,
    plan: &'a Plan,
    out: &'a Path,
    steps: Vec<Box<dyn Step>>,
    step_names: Vec<&'a str>,
    read: Arc<ReadOptions>,
    kept: Arc<WriterOptions>,
    rejected: Option<Arc<WriterOptions>>,
    fail_fast: bool,
}

/// What became of a document in the steps.
#[derive(Clone)]
enum Fate {
    Alive,
    Dropped(usize, Cow<'static, str>),
    /// The step at this index panicked on the document.
    Failed(usize, String),
    /// The step at this index, annotating, would write this field, which
    /// the document has already.
    Collided(usize, String),
}

/// A field an annotating step would write that the document has already.
struct Collision(String);

enum Judged {
    Complete,
    /// Another unit failed the run, or a writer stopped; nothing is committed.
    Abandoned,
}

/// Where judged documents go: the kept writer, and the rejected one if any.
struct Sinks<'s> {
    kept: &'s SyncSender<(String, Prepared)>,
    rejected: Option<&'s SyncSender<(String, Prepared)>>,
}

/// The sending end of a writer thread, and the thread, which returns the
/// finished shards (not yet published) and its seconds of work.
type WriterThread<'scope> =
    (SyncSender<(String, Prepared)>, ScopedJoinHandle<'scope, std::io::Result<(Vec<PathBuf>, f64)>>);

impl<'a> Judge<'a> {
    /// Runs inside the task's pool: sampling input for the output schema
    /// reads in parallel.
    pub(super) fn new(
        pipeline: &'a Pipeline,
        plan: &'a Plan,
        out: &'a Path,
        steps: Vec<Box<dyn Step>>,
        threads: usize,
        workers: usize,
    ) -> Result<Judge<'a>, RunError> {
        let names = FieldNames {
            text: pipeline.input.text_field.clone(),
            id: pipeline.input.id_field.clone(),
            raw_text: false,
        };
        let read = Arc::new(ReadOptions {
            names: names.clone(),
            batch_size: pipeline.input.batch_size,
            batch_bytes: usize::try_from(pipeline.input.batch_bytes.0).unwrap_or(usize::MAX),
        });
        let annotating = pipeline.steps.iter().any(|s| s.mode == StepMode::Annotate);
        let inferring = pipeline.output.format == OutputFormat::Parquet
            && !plan.files.iter().all(|f| f.format == InputFormat::Parquet);
        let sample = if annotating || inferring { schema::sample_docs(plan, &read) } else { Vec::new() };
        if annotating {
            schema::check_annotation_fields(pipeline, &steps, &sample)?;
        }
        let schema = match pipeline.output.format {
            OutputFormat::Parquet => {
                let base = schema::output_schema(plan, &read, &sample)?;
                Some(write::with_annotation_fields(&base, &schema::annotation_columns(pipeline, &steps)))
            }
            OutputFormat::Jsonl => None,
        };
        let writer_options = |schema| {
            Arc::new(WriterOptions {
                format: pipeline.output.format,
                shard_bytes: pipeline.output.shard_bytes.0,
                row_group_rows: pipeline.output.row_group_rows,
                row_group_bytes: usize::try_from(pipeline.output.row_group_bytes.0).unwrap_or(usize::MAX),
                level: pipeline.output.compression_level,
                compress_threads: (threads / workers).max(1) as u32,
                schema,
                text_field: names.text.clone(),
            })
        };
        Ok(Judge {
            pipeline,
            plan,
            out,
            step_names: pipeline.steps.iter().map(|s| s.name.as_str()).collect(),
            steps,
            read,
            kept: writer_options(schema.clone()),
            rejected: pipeline
                .output
                .rejected
                .then(|| writer_options(schema.as_deref().map(write::with_rejection_fields))),
            fail_fast: pipeline.run.on_error == OnError::Fail,
        })
    }

    fn empty_stats(&self) -> Stats {
        Stats::for_steps(self.pipeline.steps.iter().map(|s| (s.name.as_str(), s.kind.as_str(), s.mode.as_str())))
    }

    /// A unit, start to finish: its stats once its shards are published;
    /// `None` when it stopped because another unit failed.
    pub(super) fn unit(
        &self,
        unit: &Unit,
        progress: &mut UnitProgress,
        abort: &AtomicBool,
    ) -> Result<Option<Stats>, RunError> {
        let file = &self.plan.files[unit.file];
        let mut stats = self.empty_stats();
        stats.units = 1;
        stats.input_bytes = unit.bytes;
        // An unreadable file also has size 0 in the plan; it is reported as an error.
        if file.size == 0 && file.path.metadata().is_ok() {
            stats.warning("empty_file", || file.path.display().to_string());
        }
        let stem = format!("part-{:06}", unit.index);
        let rejected_dir = self.out.join("rejected");
        let write_err = |dir: &Path| {
            let path = dir.join(format!("{stem}-*")).display().to_string();
            move |source| RunError::Write { path, source }
        };

        let (judged, kept, rejected) = std::thread::scope(|scope| {
            let (kept_tx, kept_thread) =
                spawn_writer(scope, PartitionedWriter::new(self.out, stem.clone(), self.kept.clone()));
            let rejected = self
                .rejected
                .as_ref()
                .map(|o| spawn_writer(scope, PartitionedWriter::new(&rejected_dir, stem.clone(), o.clone())));
            let (rejected_tx, rejected_thread) = rejected.unzip();
            let sinks = Sinks { kept: &kept_tx, rejected: rejected_tx.as_ref() };
            let judged = self.read_and_judge(unit, &mut stats, progress, abort, &sinks);
            drop((kept_tx, rejected_tx));
            let kept = kept_thread.join().expect("a writer thread does not panic");
            let rejected = rejected_thread.map(|t| t.join().expect("a writer thread does not panic"));
            (judged, kept, rejected)
        });
        // A writer's own error explains a judging that stopped because the writer did.
        let (kept_paths, kept_seconds) = kept.map_err(write_err(self.out))?;
        let (rejected_paths, rejected_seconds) =
            rejected.transpose().map_err(write_err(&rejected_dir))?.unwrap_or_default();
        match judged? {
            Judged::Complete => {}
            Judged::Abandoned => return Ok(None),
        }
        write::commit(&kept_paths)?;
        write::commit(&rejected_paths)?;
        stats.write_seconds += kept_seconds + rejected_seconds;
        stats.output_files = kept_paths.len() as u64;
        Ok(Some(stats))
    }

    /// Reads the unit batch by batch; each batch is admitted, judged,
    /// settled and sent to the writers.
    fn read_and_judge(
        &self,
        unit: &Unit,
        stats: &mut Stats,
        progress: &mut UnitProgress,
        abort: &AtomicBool,
        sinks: &Sinks,
    ) -> Result<Judged, RunError> {
        let file = &self.plan.files[unit.file];
        let mut reader = read::open(file, unit, self.read.clone());
        let mut next_index = 0u32;
        loop {
            let t_read = Instant::now();
            let Some(records) = reader.next_batch() else { break };
            stats.read_seconds += t_read.elapsed().as_secs_f64();
            if abort.load(Ordering::Relaxed) {
                return Ok(Judged::Abandoned);
            }
            let mut docs = self.admit(records, file, unit, stats, &mut next_index)?;
            let fates = self.run_steps(&mut docs, stats);
            self.settle(&docs, &fates, file, stats)?;
            let t_write = Instant::now();
            let sent = self.send(&docs, &fates, file, stats, sinks)?;
            stats.write_seconds += t_write.elapsed().as_secs_f64();
            if !sent {
                return Ok(Judged::Abandoned);
            }
            progress.read_to(reader.bytes_read());
            progress.docs(docs.len() as u64);
        }
        Ok(Judged::Complete)
    }

    /// A bad document: the run stops on it under `on_error = "fail"`, else
    /// it is counted with where it was.
    fn bad_document(
        &self,
        stats: &mut Stats,
        kind: ErrorKind,
        n: u64,
        location: impl FnOnce() -> String,
        message: &str,
    ) -> Result<(), RunError> {
        if self.fail_fast {
            return Err(RunError::BadDocument { location: location(), kind, message: message.to_owned() });
        }
        stats.error(kind, n, || format!("{}: {message}", location()));
        Ok(())
    }

    /// The batch's documents, counted as input and given their places;
    /// records that did not become documents are bad documents.
    fn admit(
        &self,
        records: Vec<Record>,
        file: &InputFile,
        unit: &Unit,
        stats: &mut Stats,
        next_index: &mut u32,
    ) -> Result<Vec<Doc>, RunError> {
        let mut docs = Vec::with_capacity(records.len());
        for record in records {
            match record {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    stats.input_docs += e.count;
                    let location = || read::describe(e.at, file, unit);
                    self.bad_document(stats, e.error.kind, e.count, location, &e.error.message)?;
                }
            }
        }
        stats.input_docs += docs.len() as u64;
        stats.input_text_bytes += docs.iter().map(|d| d.text.len() as u64).sum::<u64>();
        for doc in &mut docs {
            doc.place = Place { unit: unit.index as u32, index: *next_index };
            *next_index += 1;
        }
        Ok(docs)
    }

    /// Runs the steps one after the other over the batch (step-major),
    /// which times each step and keeps its code hot in cache; returns what
    /// became of each document.
    fn run_steps(&self, docs: &mut [Doc], stats: &mut Stats) -> Vec<Fate> {
        let mut fates: Vec<Fate> = vec![Fate::Alive; docs.len()];
        for (i, step) in self.steps.iter().enumerate() {
            let t = Instant::now();
            stats.steps[i].docs_in += fates.iter().filter(|f| matches!(f, Fate::Alive)).count() as u64;
            let name = self.step_names[i];
            let annotating = self.pipeline.steps[i].mode == StepMode::Annotate;
            let counting = !annotating && step.sums_signals();
            if !annotating && !counting && self.judge_batch(i, step.as_ref(), docs, &mut fates) {
                stats.steps[i].seconds += t.elapsed().as_secs_f64();
                continue;
            }
            let results: Vec<(Option<Cow<'static, str>>, Vec<f64>)> = docs
                .par_iter_mut()
                .zip(fates.par_iter_mut())
                .map(|(doc, fate)| {
                    let mut signals = Vec::new();
                    if !matches!(fate, Fate::Alive) {
                        return (None, signals);
                    }
                    // A step that panics on one document costs that document
                    // (counted as an error), not the run.
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        hooks::judging(&doc.text);
                        if annotating {
                            annotate(step.as_ref(), name, doc)
                        } else if counting {
                            Ok(step.judge(doc, Mode::Count(&mut signals)))
                        } else {
                            Ok(step.judge(doc, Mode::Filter))
                        }
                    }));
                    let flagged = match outcome {
                        Ok(Ok(Outcome::Keep)) => None,
                        Ok(Ok(Outcome::Drop(reason))) if annotating => Some(reason),
                        Ok(Ok(Outcome::Drop(reason))) => {
                            *fate = Fate::Dropped(i, reason);
                            None
                        }
                        Ok(Err(Collision(field))) => {
                            *fate = Fate::Collided(i, field);
                            None
                        }
                        Err(panic) => {
                            *fate = Fate::Failed(i, panic_message(panic));
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
        fates
    }

    /// Runs step `i` on the batch's living documents at once, if it judges
    /// whole batches; false if it judges one document at a time.
    fn judge_batch(&self, i: usize, step: &dyn Step, docs: &[Doc], fates: &mut [Fate]) -> bool {
        let alive: Vec<usize> = (0..docs.len()).filter(|&k| matches!(fates[k], Fate::Alive)).collect();
        let batch: Vec<&Doc> = alive.iter().map(|&k| &docs[k]).collect();
        // A panic costs the batch's documents (each counted as an error), not the run.
        let outcomes = match catch_unwind(AssertUnwindSafe(|| step.judge_batch(&batch))) {
            Ok(None) => return false,
            Ok(Some(outcomes)) => outcomes,
            Err(panic) => vec![Err(JudgeError(panic_message(panic))); batch.len()],
        };
        assert_eq!(outcomes.len(), alive.len(), "step {}: one outcome per document", self.step_names[i]);
        for (k, outcome) in alive.into_iter().zip(outcomes) {
            match outcome {
                Ok(Outcome::Keep) => {}
                Ok(Outcome::Drop(reason)) => fates[k] = Fate::Dropped(i, reason),
                Err(JudgeError(message)) => fates[k] = Fate::Failed(i, message),
            }
        }
        true
    }

    /// Counts the dropped documents by step and reason; a document a step
    /// failed on is a bad document.
    fn settle(&self, docs: &[Doc], fates: &[Fate], file: &InputFile, stats: &mut Stats) -> Result<(), RunError> {
        for (doc, fate) in docs.iter().zip(fates) {
            match fate {
                Fate::Alive => {}
                Fate::Dropped(step, reason) => {
                    let s = &mut stats.steps[*step];
                    s.dropped += 1;
                    *s.reasons.entry(reason.to_string()).or_default() += 1;
                    stats.dropped_docs += 1;
                }
                Fate::Failed(step, message) => {
                    let location =
                        || format!("{}: document {:?}: step {}", file.path.display(), doc.id, self.step_names[*step]);
                    self.bad_document(stats, ErrorKind::StepFailed, 1, location, message)?;
                }
                Fate::Collided(step, field) => {
                    let location =
                        || format!("{}: document {:?}: step {}", file.path.display(), doc.id, self.step_names[*step]);
                    let message = format!("the document has a field {field:?} already, which the step would write");
                    self.bad_document(stats, ErrorKind::FieldCollision, 1, location, &message)?;
                }
            }
        }
        Ok(())
    }

    /// Encodes the kept documents (and the dropped ones, for the rejected
    /// output) and sends them to the writers; false when a writer stopped.
    fn send(
        &self,
        docs: &[Doc],
        fates: &[Fate],
        file: &InputFile,
        stats: &mut Stats,
        sinks: &Sinks,
    ) -> Result<bool, RunError> {
        let text_field = self.read.names.text.as_str();
        let string_id = (self.pipeline.output.format == OutputFormat::Parquet).then_some(self.read.names.id.as_str());
        let want_rejected = sinks.rejected.is_some();
        let encoded: Vec<Option<Vec<u8>>> = docs
            .par_iter()
            .zip(fates.par_iter())
            .map(|(doc, fate)| match fate {
                Fate::Alive => Some(encode(doc, text_field, string_id, &[])),
                Fate::Dropped(step, reason) => want_rejected.then(|| {
                    let rejected = [(REJECTED_STEP, self.step_names[*step]), (REJECTED_REASON, reason.as_ref())];
                    encode(doc, text_field, string_id, &rejected)
                }),
                Fate::Failed(..) | Fate::Collided(..) => None,
            })
            .collect();
        let (mut kept, mut kept_bytes, mut rejected_bytes) = (Vec::new(), Vec::new(), Vec::new());
        for ((doc, fate), bytes) in docs.iter().zip(fates).zip(encoded) {
            match (fate, bytes) {
                (Fate::Alive, Some(b)) => {
                    kept.push(doc);
                    kept_bytes.push(b);
                }
                (Fate::Dropped(..), Some(b)) => rejected_bytes.push(b),
                _ => {}
            }
        }
        if !self.send_kept(&kept, kept_bytes, file, stats, sinks.kept)? {
            return Ok(false);
        }
        if let (Some(tx), Some(options)) = (sinks.rejected, self.rejected.as_ref()) {
            let (prepared, misfits) = options.prepare(rejected_bytes);
            for (_, why) in misfits {
                stats.warning("rejected_not_written", || format!("{}: {why}", file.path.display()));
            }
            if prepared.is_some_and(|p| tx.send((String::new(), p)).is_err()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The kept documents by partition (one, "", without
    /// `output.partition_by`), each in input order; a document that does not
    /// fit the output's schema is a bad document.
    fn send_kept(
        &self,
        kept: &[&Doc],
        kept_bytes: Vec<Vec<u8>>,
        file: &InputFile,
        stats: &mut Stats,
        tx: &SyncSender<(String, Prepared)>,
    ) -> Result<bool, RunError> {
        let partition_by = &self.pipeline.output.partition_by;
        let mut partitions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, doc) in kept.iter().enumerate() {
            let name = match partition_by {
                None => String::new(),
                Some(field) => write::partition_name(doc.fields.iter().find(|(k, _)| k == field).map(|(_, v)| v.get())),
            };
            partitions.entry(name).or_default().push(i);
        }
        let mut kept_bytes: Vec<Option<Vec<u8>>> = kept_bytes.into_iter().map(Some).collect();
        for (partition, members) in partitions {
            let bytes =
                members.iter().map(|&i| kept_bytes[i].take().expect("each document in one partition")).collect();
            let (prepared, misfits) = self.kept.prepare(bytes);
            let mut misfit = misfits.iter().peekable();
            for (j, &i) in members.iter().enumerate() {
                let doc = kept[i];
                if misfit.peek().is_some_and(|(m, _)| *m == j) {
                    let (_, why) = misfit.next().expect("peeked");
                    let location = || format!("{}: document {:?}", file.path.display(), doc.id);
                    self.bad_document(stats, ErrorKind::OutputSchema, 1, location, why)?;
                } else {
                    stats.kept_docs += 1;
                    stats.kept_text_bytes += doc.text.len() as u64;
                    if partition_by.is_some() {
                        *stats.partitions.entry(partition.clone()).or_default() += 1;
                    }
                }
            }
            if prepared.is_some_and(|p| tx.send((partition, p)).is_err()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Runs a step in annotate mode on one document: adds `<step>` (`"keep"` or
/// the reason) and `<step>.<signal>` fields, and returns what the step
/// would have decided; or the name of a field it would add that the
/// document has already (it then adds none).
fn annotate(step: &dyn Step, name: &str, doc: &mut Doc) -> Result<Outcome, Collision> {
    let has = |field: &str| doc.fields.iter().any(|(k, _)| k == field);
    if has(name) {
        return Err(Collision(name.to_owned()));
    }
    if let Some(signal) = step.signal_names().iter().find(|s| has(&format!("{name}.{s}"))) {
        return Err(Collision(format!("{name}.{signal}")));
    }
    let mut signals = Vec::with_capacity(step.signal_names().len());
    let outcome = step.judge(doc, Mode::Annotate(&mut signals));
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
    Ok(outcome)
}

/// The document as the JSON object a writer takes; `string_id` names the id
/// field when the output needs it as a string (Parquet).
pub(super) fn encode(doc: &Doc, text_field: &str, string_id: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.text.len() + 64);
    doc.write_json_as(&mut out, text_field, string_id, extra);
    out
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    format!("the step failed on this document: {}", text.unwrap_or_else(|| "unknown panic".into()))
}

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
            hooks::batch_written();
        }
        let t = Instant::now();
        let paths = writer.finish()?;
        Ok((paths, seconds + t.elapsed().as_secs_f64()))
    });
    (tx, handle)
}
