//! The output folder's bookkeeping, which makes runs resumable:
//!
//! ```text
//! OUT/part-000012-000.parquet         shards, named by unit
//! OUT/rejected/part-000012-000.parquet
//! OUT/stats.json                      merged stats, once every task is done
//! OUT/stats/rank-00003-of-00008.json  a task's stats: its completion marker
//! OUT/.curate/run.json                what this folder holds (fingerprint)
//! OUT/.curate/units/000012.json       a unit's stats: its completion marker
//! ```
//!
//! A unit's shards are renamed into place before its marker is written, so
//! a marker always means complete output, and a unit without one is redone
//! from scratch, overwriting whatever a killed run left.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::stats::Stats;
use super::task::Task;
use crate::io::atomic;

pub struct RunDir {
    pub out: PathBuf,
    state: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct RunInfo {
    fingerprint: String,
    units: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "{out} holds the output of a different pipeline or input (fingerprint {found}, this run {expected}); \
         use another output folder, or delete this one to start over"
    )]
    Mismatch { out: String, found: String, expected: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.display().to_string(), source }
}

impl RunDir {
    pub fn open(out: &Path) -> Result<RunDir, StateError> {
        let state = out.join(".curate");
        for dir in [state.join("units"), out.join("stats")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(RunDir { out: out.to_owned(), state })
    }

    /// Records what this folder holds, or checks that it holds the same:
    /// resuming into a folder written by another pipeline would mix outputs.
    pub fn claim(&self, fingerprint: &str, units: usize, task: Task) -> Result<(), StateError> {
        let path = self.state.join("run.json");
        match fs::read(&path) {
            Ok(bytes) => {
                let found = serde_json::from_slice::<RunInfo>(&bytes)
                    .map(|i| i.fingerprint)
                    .unwrap_or_else(|_| "unreadable".into());
                if found != fingerprint {
                    return Err(StateError::Mismatch {
                        out: self.out.display().to_string(),
                        found,
                        expected: fingerprint.into(),
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let info = serde_json::to_vec_pretty(&RunInfo { fingerprint: fingerprint.into(), units })
                    .expect("serialisable");
                atomic::write_shared(&path, &info, &format!("rank{}", task.rank)).map_err(io_err(&path))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn unit_path(&self, unit: usize) -> PathBuf {
        self.state.join("units").join(format!("{unit:06}.json"))
    }

    fn task_path(&self, task: Task) -> PathBuf {
        self.out.join("stats").join(format!("rank-{:05}-of-{:05}.json", task.rank, task.world))
    }

    /// The stats of a finished unit. A marker that does not parse (a disk
    /// that lost it) means the unit is done again.
    pub fn unit_done(&self, unit: usize) -> Option<Stats> {
        serde_json::from_slice(&fs::read(self.unit_path(unit)).ok()?).ok()
    }

    pub fn mark_unit(&self, unit: usize, stats: &Stats) -> Result<(), StateError> {
        let path = self.unit_path(unit);
        atomic::write(&path, &serde_json::to_vec(stats).expect("serialisable")).map_err(io_err(&path))
    }

    pub fn task_done(&self, task: Task) -> Option<Stats> {
        serde_json::from_slice(&fs::read(self.task_path(task)).ok()?).ok()
    }

    pub fn mark_task(&self, task: Task, stats: &Stats) -> Result<(), StateError> {
        let path = self.task_path(task);
        atomic::write(&path, &serde_json::to_vec_pretty(stats).expect("serialisable")).map_err(io_err(&path))
    }

    /// The sum of all `world` tasks' stats, or the ranks still missing.
    pub fn merged(&self, world: usize) -> Result<Stats, Vec<usize>> {
        let mut total = Stats::default();
        let mut missing = Vec::new();
        for rank in 0..world {
            match self.task_done(Task { rank, world }) {
                Some(stats) => total.merge(&stats),
                None => missing.push(rank),
            }
        }
        if missing.is_empty() {
            Ok(total)
        } else {
            Err(missing)
        }
    }

    /// World sizes for which some task stats exist.
    pub fn world_sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = fs::read_dir(self.out.join("stats"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.rsplit_once("-of-")?.1.parse().ok()
            })
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Writes `OUT/stats.json`. Several tasks may finish at once and write
    /// the same merged stats; each uses its own temporary name.
    pub fn write_stats(&self, stats: &Stats, task: Task) -> Result<PathBuf, StateError> {
        let path = self.out.join("stats.json");
        let bytes = serde_json::to_vec_pretty(stats).expect("serialisable");
        atomic::write_shared(&path, &bytes, &format!("rank{}", task.rank)).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Removes temporary files that a killed run left for units this task
    /// owns, in `dir` (the output folder or `rejected/`).
    pub fn remove_stale_temps(&self, dir: &Path, task: Task) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let unit = name
                .strip_prefix(".part-")
                .and_then(|rest| rest.get(..6))
                .and_then(|digits| digits.parse::<usize>().ok());
            if name.ends_with(".tmp") && unit.is_some_and(|u| task.owns(u)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}
