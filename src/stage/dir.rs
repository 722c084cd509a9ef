//! A stage's bookkeeping on disk, the same for every stage:
//!
//! ```text
//! STATE/run.json                  what the folder holds: the input's and options' fingerprint, the unit count
//! STATE/units/unit-000012.json    unit 12's stats: its completion marker
//! STATS/rank-00003-of-00008.json  task 3 of 8's stats: its completion marker
//! STATS/.rank-00003-of-00008.lock  held by the process running task 3 of 8
//! ```
//!
//! `curate run` keeps STATE in `OUT/.curate` and STATS in `OUT/stats`; the
//! dedup stages in `WORK/signatures` and `WORK/lines` (STATS below them);
//! tokenization in `TOKENS/.curate`. A unit's files are published (synced
//! and renamed into place) before its marker is written, so a marker always
//! means complete, durable output, and a unit without one is redone from
//! scratch, overwriting whatever a killed run left.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::io::atomic::{self, WriteError};
use crate::runtime::task::Task;

pub struct StageDir {
    state: PathBuf,
    stats: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct RunInfo {
    fingerprint: String,
    units: usize,
}

impl StageDir {
    /// `state` for the fingerprint and unit markers, `stats` for the tasks'
    /// stats; nothing is created until [`StageDir::create`].
    pub fn new(state: PathBuf, stats: PathBuf) -> StageDir {
        StageDir { state, stats }
    }

    /// The state in `folder` and the tasks' stats in `folder/stats`, as the
    /// dedup stages and tokenization keep them.
    pub fn within(folder: PathBuf) -> StageDir {
        let stats = folder.join("stats");
        StageDir { state: folder, stats }
    }

    /// Creates the folders, for a stage about to run.
    pub fn create(&self) -> Result<(), WriteError> {
        atomic::create_dir(&self.state.join("units"))?;
        atomic::create_dir(&self.stats)
    }

    fn run_path(&self) -> PathBuf {
        self.state.join("run.json")
    }

    /// The fingerprint and unit count recorded here, if any.
    fn recorded(&self) -> io::Result<Option<RunInfo>> {
        match fs::read(self.run_path()) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).unwrap_or(RunInfo { fingerprint: "unreadable".into(), units: 0 }),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The fingerprint recorded here, if any.
    pub fn fingerprint(&self) -> Option<String> {
        self.recorded().ok().flatten().map(|r| r.fingerprint)
    }

    /// How many units the recorded run has, if any.
    pub fn units(&self) -> Option<usize> {
        self.recorded().ok().flatten().map(|r| r.units)
    }

    /// Records what this folder holds, or checks that it holds the same:
    /// resuming into a folder written from another input or with other
    /// options would mix their outputs. `holds` says what such a folder
    /// holds, for the error. Tasks may start together: each records with
    /// its own temporary file.
    pub fn claim(&self, fingerprint: &str, units: usize, task: Task, holds: &str) -> Result<(), StageError> {
        let path = self.run_path();
        match self.recorded().map_err(|source| StageError::Read { path: path.clone(), source })? {
            Some(found) if found.fingerprint == fingerprint => Ok(()),
            Some(found) => Err(StageError::Claimed {
                folder: self.state.parent().unwrap_or(&self.state).to_owned(),
                holds: holds.to_owned(),
                found: found.fingerprint,
                expected: fingerprint.to_owned(),
            }),
            None => {
                let info = serde_json::to_vec_pretty(&RunInfo { fingerprint: fingerprint.into(), units })
                    .expect("serialisable");
                Ok(atomic::write_shared(&path, &info, &task.name())?)
            }
        }
    }

    /// Holds `task`'s lock in this folder until the returned file is
    /// dropped, or refuses when another process holds it: two runs of one
    /// task would write the same files at once. The lock is the operating
    /// system's, so a killed run leaves none behind; its file is hidden
    /// beside the task's stats (`STATS/.rank-00003-of-00008.lock`).
    pub fn lock(&self, task: Task) -> Result<fs::File, StageError> {
        atomic::create_dir(&self.stats)?;
        let path = self.stats.join(format!(".{}.lock", task.name()));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StageError::Read { path: path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(StageError::Busy { path, task }),
            Err(fs::TryLockError::Error(source)) => Err(StageError::Read { path, source }),
        }
    }

    pub fn unit_path(&self, unit: usize) -> PathBuf {
        self.state.join("units").join(format!("unit-{unit:06}.json"))
    }

    pub fn task_path(&self, task: Task) -> PathBuf {
        self.stats.join(format!("{}.json", task.name()))
    }

    /// The stats of a finished unit. A marker that does not parse (a disk
    /// that lost it) means the unit is done again.
    pub fn unit_done<S: DeserializeOwned>(&self, unit: usize) -> Option<S> {
        serde_json::from_slice(&fs::read(self.unit_path(unit)).ok()?).ok()
    }

    pub fn mark_unit<S: Serialize>(&self, unit: usize, stats: &S) -> Result<(), WriteError> {
        atomic::write(&self.unit_path(unit), &serde_json::to_vec(stats).expect("serialisable"))
    }

    pub fn task_done<S: DeserializeOwned>(&self, task: Task) -> Option<S> {
        serde_json::from_slice(&fs::read(self.task_path(task)).ok()?).ok()
    }

    pub fn mark_task<S: Serialize>(&self, task: Task, stats: &S) -> Result<(), WriteError> {
        atomic::write(&self.task_path(task), &serde_json::to_vec_pretty(stats).expect("serialisable"))
    }

    /// Every unit of the recorded run that has no marker.
    pub fn missing_units(&self, units: usize) -> Vec<usize> {
        (0..units).filter(|&u| !self.unit_path(u).is_file()).collect()
    }

    /// The sum of all `world` tasks' stats, or the ranks still missing.
    pub fn merged<S: super::StageStats>(&self, world: usize) -> Result<S, Vec<usize>> {
        let mut total = S::default();
        let mut missing = Vec::new();
        for rank in 0..world {
            match self.task_done::<S>(Task { rank, world }) {
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
        let mut sizes: Vec<usize> = fs::read_dir(&self.stats)
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
}

/// Removes the temporary files a killed run left in `dir` for units `task`
/// owns: names `.part-NNNNNN...tmp`, as the shard writers make them.
pub fn remove_stale_temps(dir: &Path, task: Task) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let unit =
            name.strip_prefix(".part-").and_then(|rest| rest.get(..6)).and_then(|digits| digits.parse::<usize>().ok());
        if name.ends_with(".tmp") && unit.is_some_and(|u| task.owns(u)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
