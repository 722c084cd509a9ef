//! Running one task of a pipeline: plan the input, claim the output folder,
//! and judge the units this task owns that an earlier run did not finish
//! ([`crate::stage`] does the claiming, resuming, markers and merging;
//! [`super::judge`] the work on one unit).
//!
//! Determinism: a unit's documents are read, judged and written in input
//! order; parallel work inside a batch is order-preserving; each unit writes
//! its own shards. So the output depends on the input and the pipeline only,
//! not on threads, tasks, or on where a previous run was killed.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use super::config::Pipeline;
use super::judge::Judge;
use super::registry::{self, StepError};
use super::stats::Stats;
use crate::io::atomic::WriteError;
use crate::io::doc::{ErrorKind, FieldNames};
use crate::io::plan::{self, Ignored, Plan};
use crate::runtime::pool::{self, PoolError};
use crate::runtime::progress::ProgressMode;
use crate::runtime::task::Task;
use crate::runtime::ErrorClass;
use crate::stage::dir::remove_stale_temps;
use crate::stage::{Stage, StageDir, StageError, StageStats, Unbalanced};
use crate::step::{InputMismatch, Step};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Stage(#[from] StageError),
    /// Boxed: step errors carry the dedup stages' and are the largest.
    #[error("step {name}: {source}")]
    Step { name: String, source: Box<StepError> },
    #[error("step {name}: {source}")]
    Input { name: String, source: InputMismatch },
    #[error("{}: cannot read the Parquet schema for the output: {message}", path.display())]
    ParquetSchema { path: PathBuf, message: String },
    /// An annotating step would write a field that exists already.
    #[error("step {step}: its field {field:?} is {taken}; an annotating step adds fields named after it, so give it another `name`")]
    FieldCollision { step: String, field: String, taken: String },
    /// A shard writer failed; `path` names the unit's shards.
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(transparent)]
    Publish(#[from] WriteError),
    /// A bad document with `on_error = "fail"`.
    #[error("{location}: {}: {message}", kind.as_str())]
    BadDocument { location: String, kind: ErrorKind, message: String },
}

impl From<PoolError> for RunError {
    fn from(e: PoolError) -> Self {
        RunError::Stage(e.into())
    }
}

impl From<Unbalanced> for RunError {
    fn from(e: Unbalanced) -> Self {
        RunError::Stage(e.into())
    }
}

impl RunError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RunError::Stage(e) => e.class(),
            RunError::Step { .. }
            | RunError::Input { .. }
            | RunError::ParquetSchema { .. }
            | RunError::FieldCollision { .. } => ErrorClass::Usage,
            RunError::Write { .. } | RunError::Publish(_) | RunError::BadDocument { .. } => ErrorClass::Failed,
        }
    }
}

pub struct RunOptions {
    pub task: Task,
    pub threads: usize,
    pub progress: ProgressMode,
}

pub struct TaskReport {
    pub task: Stats,
    /// The whole run's stats, once every task is done, and where they are.
    pub merged: Option<(Stats, PathBuf)>,
    /// The task had finished in an earlier run.
    pub already_done: bool,
    /// What the input holds that was not read, and why.
    pub ignored: Vec<Ignored>,
}

/// The pipeline a run's output folder was made by, in `OUT/.curate/`.
pub const PIPELINE_FILE: &str = "pipeline.json";

/// The bookkeeping of a run's output folder: `OUT/.curate/` and `OUT/stats/`.
pub fn run_dir(out: &Path) -> StageDir {
    StageDir::new(out.join(".curate"), out.join("stats"))
}

pub fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<TaskReport, RunError> {
    run_with(pipeline, options, None)
}

/// [`run`] with steps the caller built, one per `pipeline.steps` in order:
/// the condition of `curate select`, which the registry does not build.
pub fn run_built(pipeline: &Pipeline, options: &RunOptions, steps: Vec<Box<dyn Step>>) -> Result<TaskReport, RunError> {
    assert_eq!(steps.len(), pipeline.steps.len(), "one built step per step of the pipeline");
    run_with(pipeline, options, Some(steps))
}

fn run_with(
    pipeline: &Pipeline,
    options: &RunOptions,
    built: Option<Vec<Box<dyn Step>>>,
) -> Result<TaskReport, RunError> {
    let task = options.task;
    let plan = plan::plan(&pipeline.input.path, pipeline.input.format, pipeline.input.split_bytes.0)
        .map_err(StageError::from)?;
    let out = PathBuf::from(&pipeline.output.path);
    plan::refuse_output_in_input(&pipeline.input.path, &out).map_err(StageError::from)?;
    // Steps built, and their fields checked against the input's, before the
    // folder is claimed: a step that cannot run (a model that does not load,
    // a field that collides) leaves nothing behind to be refused later.
    let steps = match built {
        Some(steps) => steps,
        None => build_steps(pipeline)?,
    };
    check_steps(pipeline, &plan, &steps)?;
    let pool = pool::pool(options.threads)?;
    let owned = (0..plan.units.len()).filter(|&u| task.owns(u)).count();
    let workers = options.threads.min(owned).max(1);
    let judge = pool.install(|| Judge::new(pipeline, &plan, &out, steps, options.threads, workers))?;
    let dir = run_dir(&out);
    dir.create()?;
    let holds = "the output of a different pipeline or input";
    let stage = Stage::<Stats>::claim(&dir, &plan, task, &fingerprint(pipeline, &plan), holds, |_| true)?;
    // The pipeline as run, for `curate report` (thresholds, step types).
    let as_run = serde_json::to_vec_pretty(pipeline).expect("serialisable");
    crate::io::atomic::write_shared(&out.join(".curate").join(PIPELINE_FILE), &as_run, &task.name())
        .map_err(StageError::from)?;
    if let Some(stats) = stage.finished() {
        let merged = merge_if_complete(&dir, &out, task)?;
        return Ok(TaskReport { task: stats, merged, already_done: true, ignored: plan.ignored });
    }
    for dir in output_folders(&out, pipeline.output.partition_by.is_some()) {
        remove_stale_temps(&dir, task);
    }
    let initial = Stats::for_steps(pipeline.steps.iter().map(|s| (s.name.as_str(), s.kind.as_str(), s.mode.as_str())));
    let stats = stage
        .run(initial, &pool, workers, options.progress, |unit, progress, abort| judge.unit(unit, progress, abort))?;
    let merged = merge_if_complete(&dir, &out, task)?;
    Ok(TaskReport { task: stats, merged, already_done: false, ignored: plan.ignored })
}

/// Each step, built once from its options (reading the files they name).
fn build_steps(pipeline: &Pipeline) -> Result<Vec<Box<dyn Step>>, RunError> {
    let mut steps = Vec::with_capacity(pipeline.steps.len());
    for spec in &pipeline.steps {
        let step = registry::build(&spec.kind, &spec.options)
            .map_err(|source| RunError::Step { name: spec.name.clone(), source: Box::new(source) })?;
        steps.push(step);
    }
    Ok(steps)
}

/// Each step checked against the input.
fn check_steps(pipeline: &Pipeline, plan: &Plan, steps: &[Box<dyn Step>]) -> Result<(), RunError> {
    let names =
        FieldNames { text: pipeline.input.text_field.clone(), id: pipeline.input.id_field.clone(), raw_text: false };
    for (spec, step) in pipeline.steps.iter().zip(steps) {
        step.check_input(plan, &names).map_err(|source| RunError::Input { name: spec.name.clone(), source })?;
    }
    Ok(())
}

/// The folders a killed run may have left temporary shards in: the output,
/// `rejected/`, and with partitions each partition's folder.
fn output_folders(out: &Path, partitioned: bool) -> Vec<PathBuf> {
    let mut folders = vec![out.to_owned(), out.join("rejected")];
    if partitioned {
        for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(entry.path());
            }
        }
    }
    folders
}

/// Writes `OUT/stats.json` once every task is done (`dir` is [`run_dir`]). Several tasks may
/// finish at once and write the same merged stats; each uses its own
/// temporary name.
pub fn merge_if_complete(dir: &StageDir, out: &Path, task: Task) -> Result<Option<(Stats, PathBuf)>, RunError> {
    match dir.merged::<Stats>(task.world) {
        Ok(stats) => {
            stats.check()?;
            let path = write_merged(out, &stats, task)?;
            Ok(Some((stats, path)))
        }
        Err(_) => Ok(None),
    }
}

/// Writes the merged stats of a run to `OUT/stats.json`.
pub fn write_merged(out: &Path, stats: &Stats, task: Task) -> Result<PathBuf, WriteError> {
    let path = out.join("stats.json");
    let bytes = serde_json::to_vec_pretty(stats).expect("serialisable");
    crate::io::atomic::write_shared(&path, &bytes, &task.name())?;
    Ok(path)
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
