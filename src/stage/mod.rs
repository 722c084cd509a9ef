//! The one driver of every stage that works through the input's units and
//! can be shared between tasks: `curate run`, the dedup signature and line
//! count stages, and tokenization's encoding pass. Written once, so that
//! claiming a folder, resuming and accounting behave the same everywhere:
//!
//! 1. the caller plans the input ([`crate::io::plan`]) and fingerprints it
//!    with the options that shape the output;
//! 2. [`Stage::claim`] records that fingerprint in the stage's folder, or
//!    refuses a folder that holds another input's or options' work
//!    ([`dir`]), and sorts the units this task owns into those done before
//!    (marker present, files intact) and those to do;
//! 3. [`Stage::run`] runs the stage's work on each unit to do, several at a
//!    time on the worker pool, with progress; marks each unit once the work
//!    has published its files; then merges the units' stats in unit order
//!    and marks the task.
//!
//! Stats checked by [`StageStats::check`] before any marker is written:
//! every document is accounted for, or the stage stops.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rayon::ThreadPool;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::io::atomic::WriteError;
use crate::io::plan::{Plan, PlanError, Unit};
use crate::runtime::pool::{run_units, PoolError};
use crate::runtime::progress::{Progress, ProgressMode, UnitProgress};
use crate::runtime::task::Task;
use crate::runtime::ErrorClass;

pub mod dir;

pub use dir::StageDir;

/// A stage's counts for one unit, one task or a whole run: what markers hold.
pub trait StageStats: Serialize + DeserializeOwned + Default + Send {
    /// Adds `other` (a later unit or task) into `self`.
    fn merge(&mut self, other: &Self);

    /// Documents read, for the progress of units done before.
    fn docs(&self) -> u64;

    /// Checks that every document read is accounted for, once.
    fn check(&self) -> Result<(), Unbalanced> {
        Ok(())
    }

    /// Records a task's wall-clock seconds, for stats that keep them.
    fn set_wall_seconds(&mut self, seconds: f64) {
        let _ = seconds;
    }
}

/// Stats in which documents went missing or were counted twice.
#[derive(Debug, thiserror::Error)]
#[error("stats do not add up ({0}); this is a bug in curate")]
pub struct Unbalanced(pub String);

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "{} holds {holds} (fingerprint {found}, this run {expected}); use another folder, or delete this one to start over",
        folder.display()
    )]
    Claimed { folder: PathBuf, holds: String, found: String, expected: String },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Unbalanced(#[from] Unbalanced),
}

impl StageError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StageError::Plan(_) | StageError::Claimed { .. } => ErrorClass::Usage,
            StageError::Read { .. } | StageError::Write(_) | StageError::Pool(_) | StageError::Unbalanced(_) => {
                ErrorClass::Failed
            }
        }
    }
}

/// One task's share of a stage, its folder claimed: the units it owns,
/// sorted into those done before and those to do.
pub struct Stage<'a, S> {
    dir: &'a StageDir,
    plan: &'a Plan,
    task: Task,
    done: Vec<(usize, S)>,
    todo: Vec<usize>,
    started: Instant,
}

impl<'a, S: StageStats> Stage<'a, S> {
    /// Claims `dir` for `fingerprint` (`holds` says what a folder of another
    /// fingerprint holds, for the error), then sorts the units `task` owns:
    /// a unit whose marker is there and whose files `intact` finds whole is
    /// done; the others are to do.
    pub fn claim(
        dir: &'a StageDir,
        plan: &'a Plan,
        task: Task,
        fingerprint: &str,
        holds: &str,
        intact: impl Fn(usize) -> bool,
    ) -> Result<Stage<'a, S>, StageError> {
        let started = Instant::now();
        dir.claim(fingerprint, plan.units.len(), task, holds)?;
        let (mut done, mut todo) = (Vec::new(), Vec::new());
        for unit in (0..plan.units.len()).filter(|&u| task.owns(u)) {
            match dir.unit_done::<S>(unit) {
                Some(stats) if intact(unit) => done.push((unit, stats)),
                _ => todo.push(unit),
            }
        }
        Ok(Stage { dir, plan, task, done, todo, started })
    }

    /// The units this task still has to do.
    pub fn todo(&self) -> &[usize] {
        &self.todo
    }

    /// How many of this task's units were done before.
    pub fn done_before(&self) -> usize {
        self.done.len()
    }

    /// When every unit this task owns was done before and the task marked
    /// complete: the task's stats, as written then.
    pub fn finished(&self) -> Option<S> {
        if self.todo.is_empty() {
            self.dir.task_done(self.task)
        } else {
            None
        }
    }

    /// Runs `work` on each unit to do, `workers` at a time inside `pool`.
    /// `work` publishes the unit's files and returns its stats, or `None`
    /// when it stopped because another unit failed (watch the flag); after
    /// the first error no unit starts and the error is returned. Each
    /// completed unit is checked and marked at once; then the task's stats
    /// (`initial`, then every unit's in unit order) are checked, marked and
    /// returned.
    pub fn run<E>(
        self,
        initial: S,
        pool: &ThreadPool,
        workers: usize,
        progress: ProgressMode,
        work: impl Fn(&Unit, &mut UnitProgress, &AtomicBool) -> Result<Option<S>, E> + Sync,
    ) -> Result<S, E>
    where
        E: From<StageError> + Send,
        S: Sync,
    {
        let Stage { dir, plan, task, done, todo, started } = self;
        let owned = done.iter().map(|(u, _)| *u).chain(todo.iter().copied());
        let progress = Progress::start(owned.map(|u| plan.units[u].bytes).sum(), progress);
        for (unit, stats) in &done {
            progress.add(plan.units[*unit].bytes, stats.docs());
        }
        let abort = AtomicBool::new(false);
        let results = run_units(todo.len(), workers, pool, &abort, |i| -> Result<Option<S>, E> {
            let unit = &plan.units[todo[i]];
            let mut share = progress.unit(unit.bytes);
            let Some(stats) = work(unit, &mut share, &abort)? else {
                return Ok(None);
            };
            stats.check().map_err(StageError::from)?;
            dir.mark_unit(unit.index, &stats).map_err(StageError::from)?;
            share.finish();
            Ok(Some(stats))
        });
        progress.finish();
        let done_count = done.len();
        let mut by_unit: Vec<(usize, S)> = done;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Some(Ok(Some(stats))) => by_unit.push((todo[i], stats)),
                Some(Err(e)) => return Err(e),
                // Abandoned, or never started, because another unit failed:
                // that failure is returned above.
                Some(Ok(None)) | None => {}
            }
        }
        if by_unit.len() != done_count + todo.len() {
            return Err(StageError::from(Unbalanced(format!(
                "{} of {} units ended without stats or an error",
                done_count + todo.len() - by_unit.len(),
                done_count + todo.len()
            )))
            .into());
        }
        by_unit.sort_by_key(|(unit, _)| *unit);
        let mut total = initial;
        for (_, stats) in &by_unit {
            total.merge(stats);
        }
        total.set_wall_seconds(started.elapsed().as_secs_f64());
        total.check().map_err(StageError::from)?;
        dir.mark_task(task, &total).map_err(StageError::from)?;
        Ok(total)
    }
}
