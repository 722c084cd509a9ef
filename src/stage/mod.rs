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
    #[error(
        "another curate is running task {} of {} in this folder (it holds {}); wait for it, or stop it",
        task.rank, task.world, path.display()
    )]
    Busy { path: PathBuf, task: Task },
}

impl StageError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StageError::Plan(_) | StageError::Claimed { .. } | StageError::Busy { .. } => ErrorClass::Usage,
            StageError::Read { .. } | StageError::Write(_) | StageError::Pool(_) | StageError::Unbalanced(_) => {
                ErrorClass::Failed
            }
        }
    }
}

/// One task's share of a stage, its folder claimed: the units it owns,
/// sorted into those done before and those to do.
pub struct Stage<'a, S> {
    /// This task's lock on the folder, held until the stage is dropped.
    _lock: std::fs::File,
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
        let lock = dir.lock(task)?;
        dir.claim(fingerprint, plan.units.len(), task, holds)?;
        let (mut done, mut todo) = (Vec::new(), Vec::new());
        for unit in (0..plan.units.len()).filter(|&u| task.owns(u)) {
            match dir.unit_done::<S>(unit) {
                Some(stats) if intact(unit) => done.push((unit, stats)),
                _ => todo.push(unit),
            }
        }
        Ok(Stage { _lock: lock, dir, plan, task, done, todo, started })
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
        let Stage { _lock, dir, plan, task, done, todo, started } = self;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use serde::Deserialize;

    use super::*;
    use crate::io::plan;
    use crate::runtime::pool;

    /// A stage's stats for the test: units and documents seen.
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    struct Seen {
        units: u64,
        docs: u64,
    }

    impl StageStats for Seen {
        fn merge(&mut self, other: &Seen) {
            self.units += other.units;
            self.docs += other.docs;
        }
        fn docs(&self) -> u64 {
            self.docs
        }
        fn check(&self) -> Result<(), Unbalanced> {
            (self.docs >= self.units).then_some(()).ok_or_else(|| Unbalanced("fewer documents than units".into()))
        }
    }

    /// Four input files (four units) and a stage folder.
    fn setup() -> (tempfile::TempDir, Plan, StageDir) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        for i in 0..4 {
            std::fs::write(input.join(format!("{i}.jsonl")), "{\"text\": \"a\"}\n".repeat(i + 1)).unwrap();
        }
        let plan = plan::plan(input.to_str().unwrap(), None, 1 << 20).unwrap();
        let stage_dir = StageDir::within(dir.path().join("work"));
        stage_dir.create().unwrap();
        (dir, plan, stage_dir)
    }

    /// Runs the stage as `task`, recording which units did work.
    fn run(stage_dir: &StageDir, plan: &Plan, task: Task, intact: impl Fn(usize) -> bool) -> (Seen, BTreeSet<usize>) {
        let stage = Stage::<Seen>::claim(stage_dir, plan, task, "fp", "test work", intact).unwrap();
        let worked = Mutex::new(BTreeSet::new());
        let stats = stage
            .run(Seen::default(), &pool::pool(2).unwrap(), 2, ProgressMode::None, |unit, _, _| {
                worked.lock().unwrap().insert(unit.index);
                Ok::<_, StageError>(Some(Seen { units: 1, docs: unit.index as u64 + 1 }))
            })
            .unwrap();
        (stats, worked.into_inner().unwrap())
    }

    #[test]
    fn units_done_before_are_skipped_unless_their_files_are_not_intact() {
        let (_dir, plan, stage_dir) = setup();
        let (stats, worked) = run(&stage_dir, &plan, Task::ALONE, |_| true);
        assert_eq!((stats, worked.len()), (Seen { units: 4, docs: 10 }, 4));
        let again = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "fp", "test work", |_| true).unwrap();
        assert_eq!((again.todo().len(), again.done_before()), (0, 4));
        assert_eq!(again.finished(), Some(Seen { units: 4, docs: 10 }));
        // While a stage of the task is held, no other may start.
        let busy = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "fp", "test work", |_| true);
        assert!(matches!(busy, Err(StageError::Busy { .. })));
        drop(again);
        let (stats, worked) = run(&stage_dir, &plan, Task::ALONE, |unit| unit != 2);
        assert_eq!((stats, worked), (Seen { units: 4, docs: 10 }, BTreeSet::from([2])));
    }

    #[test]
    fn tasks_share_the_units_and_merge_when_all_are_done() {
        let (_dir, plan, stage_dir) = setup();
        let (first, worked) = run(&stage_dir, &plan, Task { rank: 0, world: 2 }, |_| true);
        assert_eq!((first.units, worked), (2, BTreeSet::from([0, 2])));
        assert_eq!(stage_dir.merged::<Seen>(2), Err(vec![1]));
        run(&stage_dir, &plan, Task { rank: 1, world: 2 }, |_| true);
        assert_eq!(stage_dir.merged::<Seen>(2), Ok(Seen { units: 4, docs: 10 }));
        assert_eq!(stage_dir.world_sizes(), [2]);
    }

    #[test]
    fn a_folder_of_another_fingerprint_is_refused() {
        let (dir, plan, stage_dir) = setup();
        run(&stage_dir, &plan, Task::ALONE, |_| true);
        let err = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "other", "test work", |_| true).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{} holds test work (fingerprint fp, this run other); use another folder, or delete this one to start over",
                dir.path().display()
            )
        );
        assert_eq!(err.class(), ErrorClass::Usage);
    }

    #[test]
    fn a_failing_unit_marks_neither_itself_nor_the_task() {
        let (_dir, plan, stage_dir) = setup();
        let stage = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "fp", "test work", |_| true).unwrap();
        let result = stage.run(Seen::default(), &pool::pool(1).unwrap(), 1, ProgressMode::None, |unit, _, _| {
            if unit.index == 1 {
                return Err(StageError::Unbalanced(Unbalanced("unit 1 fails".into())));
            }
            Ok(Some(Seen { units: 1, docs: 1 }))
        });
        assert_eq!(result.unwrap_err().to_string(), "stats do not add up (unit 1 fails); this is a bug in curate");
        assert_eq!(stage_dir.missing_units(4), [1, 2, 3], "no unit starts after the failure");
        assert!(stage_dir.task_done::<Seen>(Task::ALONE).is_none());
        // Stats that break the stage's own check are refused before any marker.
        let stage = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "fp", "test work", |_| true).unwrap();
        let result = stage.run(Seen::default(), &pool::pool(1).unwrap(), 1, ProgressMode::None, |_, _, _| {
            Ok::<_, StageError>(Some(Seen { units: 1, docs: 0 }))
        });
        assert!(matches!(result, Err(StageError::Unbalanced(_))));
        assert_eq!(stage_dir.missing_units(4), [1, 2, 3]);
    }

    #[test]
    fn a_unit_that_ends_without_stats_or_an_error_fails_the_task() {
        let (_dir, plan, stage_dir) = setup();
        let stage = Stage::<Seen>::claim(&stage_dir, &plan, Task::ALONE, "fp", "test work", |_| true).unwrap();
        let result = stage.run(Seen::default(), &pool::pool(1).unwrap(), 1, ProgressMode::None, |unit, _, _| {
            Ok::<_, StageError>((unit.index != 3).then_some(Seen { units: 1, docs: 1 }))
        });
        assert_eq!(
            result.unwrap_err().to_string(),
            "stats do not add up (1 of 4 units ended without stats or an error); this is a bug in curate"
        );
        assert!(stage_dir.task_done::<Seen>(Task::ALONE).is_none());
    }
}
