//! Outputs in an object store (`s3://bucket/prefix`), for every command
//! that writes a folder. The engine writes to a local staging folder, and
//! each file it publishes there is uploaded once durable, in the order it
//! was written: shards, then the markers that vouch for them, so the store
//! never shows a marker without its files. A shard becomes visible under
//! its final key only when complete (a single PUT, or a multipart upload
//! that the store publishes on completion).
//!
//! The staging folder starts empty each time and is filled with the
//! store's copy of the folder's bookkeeping (everything but the `part-*`
//! shards): the fingerprint, unit and task markers, stats. A task resumed on
//! another machine so finds the work done, wherever it was done, and redoes
//! only units without a marker, overwriting what a killed attempt left.
//! Uploaded `part-*` shards are removed from the staging folder at once,
//! so it holds a task's bookkeeping, not its output.
//!
//! Where: `$CURATE_STAGING`, else the system's temporary folder, in
//! `curate-staging/<hash of the address>-<task or command>`, held by a
//! lock beside it; it is removed when the command ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use curate::io::atomic::{self, Mirror};
use curate::pipeline::config::Pipeline;
use curate::pipeline::executor::{self, TaskReport};
use curate::runtime::task::Task;
use curate_store::{Bucket, StoreError};
use xxhash_rust::xxh3::xxh3_64;

use super::Error;

pub struct StagedOutput {
    url: String,
    /// Who writes through this staging folder: a task (`rank-00003-of-00008`)
    /// or a command (`stats`); it names the folder and the storage record.
    name: String,
    /// Held while the folder is in use: a second process of the same name
    /// on this machine would wipe it.
    _lock: std::fs::File,
    /// The task of a run writing here: of the run's unit markers, it needs
    /// only those of its own units.
    owner: Option<Task>,
    /// A folder of curate's (bookkeeping brought down, counts recorded),
    /// rather than the folder of a single output file.
    bookkeeping: bool,
    bucket: Arc<Bucket>,
    prefix: String,
    local: PathBuf,
}

/// Copies each file published under the staging folder to its key.
struct Upload {
    bucket: Arc<Bucket>,
    prefix: String,
    local: PathBuf,
}

impl Mirror for Upload {
    fn copy(&self, path: &Path) -> std::io::Result<()> {
        let Ok(rel) = path.strip_prefix(&self.local) else { return Ok(()) };
        self.bucket.put_file(path, &key(&self.prefix, rel))?;
        if rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    fn remove(&self, dir: &Path) -> std::io::Result<()> {
        let Ok(rel) = dir.strip_prefix(&self.local) else { return Ok(()) };
        let under = key(&self.prefix, rel);
        for object in self.bucket.list(&under)? {
            self.bucket.delete(&object.key)?;
        }
        Ok(())
    }
}

fn key(prefix: &str, rel: &Path) -> String {
    let rel = rel.to_string_lossy();
    if prefix.is_empty() {
        rel.into_owned()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// `output` as the folder to write to: itself, or for an object store
/// address a staging folder (see [`StagedOutput::stage`]) to finish once
/// the work is done.
pub fn stage_if_remote(output: &str, name: &str, owner: Option<Task>) -> Result<(String, Option<StagedOutput>), Error> {
    if !curate_store::is_remote(output) {
        return Ok((output.to_owned(), None));
    }
    let staged = StagedOutput::stage(output, name, owner, true)?;
    Ok((staged.local().to_string_lossy().into_owned(), Some(staged)))
}

/// For an output file (`--output s3://bucket/tokenizer.json`): the local
/// path to write, which is uploaded once written, and the staging of its
/// folder to finish.
pub fn stage_file_if_remote(output: &Path, name: &str) -> Result<(PathBuf, Option<StagedOutput>), Error> {
    let url = output.to_string_lossy();
    if !curate_store::is_remote(&url) {
        return Ok((output.to_owned(), None));
    }
    let (folder, file) = url.trim_end_matches('/').rsplit_once('/').expect("an address has a slash");
    if folder.ends_with(':') || folder.ends_with("//") {
        return Err(Error::Usage(format!("{url}: name a file in a bucket (s3://bucket/name.json)")));
    }
    let staged = StagedOutput::stage(folder, name, None, false)?;
    Ok((staged.local().join(file), Some(staged)))
}

impl StagedOutput {
    /// Stages the output at `url` for `name` (a task, or a command): a
    /// fresh staging folder with the store's bookkeeping in it (unless
    /// `bookkeeping` is false: the folder of a single output file), of the
    /// run's unit markers only `owner`'s, and every file written under it
    /// uploaded. One output per process.
    pub fn stage(url: &str, name: &str, owner: Option<Task>, bookkeeping: bool) -> Result<StagedOutput, Error> {
        let (bucket, prefix) = Bucket::open(url)?;
        let root = std::env::var_os("CURATE_STAGING").map_or_else(std::env::temp_dir, PathBuf::from);
        let folder = format!("{:016x}-{name}", xxh3_64(url.as_bytes()));
        let local = root.join("curate-staging").join(&folder);
        atomic::create_dir(local.parent().expect("a folder"))?;
        let lock = local.with_file_name(format!(".{folder}.lock"));
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(atomic::WriteError::at(&lock))?;
        if lock_file.try_lock().is_err() {
            return Err(Error::Usage(format!(
                "another curate process on this machine is writing {url} as {name} (it holds {})",
                lock.display()
            )));
        }
        remove(&local)?;
        atomic::create_dir(&local)?;
        let staged = StagedOutput {
            url: url.to_owned(),
            name: name.to_owned(),
            _lock: lock_file,
            owner,
            bookkeeping,
            bucket,
            prefix,
            local,
        };
        if bookkeeping {
            staged.download("")?;
        }
        atomic::mirror_to(Box::new(Upload {
            bucket: staged.bucket.clone(),
            prefix: staged.prefix.clone(),
            local: staged.local.clone(),
        }));
        Ok(staged)
    }

    /// The local folder the command writes to.
    pub fn local(&self) -> &Path {
        &self.local
    }

    /// Records the pipeline as run with its output as the user gave it (the
    /// store's address), where the engine recorded the staging folder.
    fn record_pipeline(&self, pipeline: &Pipeline) -> Result<(), Error> {
        let mut as_given = pipeline.clone();
        as_given.output.path = self.url.clone();
        let path = self.local.join(".curate").join(executor::PIPELINE_FILE);
        let bytes = serde_json::to_vec_pretty(&as_given).expect("serialisable");
        Ok(atomic::write_shared(&path, &bytes, &self.name)?)
    }

    /// After a task of a run (or `select`) into this staging folder: the
    /// pipeline recorded with the store's address, and once every task is
    /// done the merged stats, which need the other tasks' stats (their
    /// markers) from the store.
    pub fn complete_run(&self, pipeline: &Pipeline, report: &mut TaskReport, task: Task) -> Result<(), Error> {
        self.record_pipeline(pipeline)?;
        if report.merged.is_none() {
            self.download("stats")?;
            let out = Path::new(&pipeline.output.path);
            report.merged = executor::merge_if_complete(&executor::run_dir(out), out, task)?;
        }
        Ok(())
    }

    /// Brings down the store's bookkeeping under `sub` (all of it for
    /// `""`) that this folder does not hold yet: what other tasks, on other
    /// machines, have written since, so that a merge of the tasks' stats
    /// sees them.
    pub fn download(&self, sub: &str) -> Result<(), Error> {
        let under = key(&self.prefix, Path::new(sub));
        let under = under.trim_end_matches('/');
        for object in self.bucket.list(under)? {
            let rel = object.key.strip_prefix(self.prefix.as_str()).unwrap_or(&object.key).trim_start_matches('/');
            let name = rel.rsplit('/').next().unwrap_or(rel);
            let path = self.local.join(rel);
            if rel.is_empty() || name.starts_with("part-") || path.exists() || not_owned(self.owner, rel) {
                continue;
            }
            let Some(bytes) = self.bucket.get(&object.key)? else { continue };
            let parent = path.parent().expect("a file under the staging folder");
            atomic::create_dir(parent)?;
            std::fs::write(&path, &bytes).map_err(atomic::WriteError::at(&path))?;
        }
        Ok(())
    }

    /// Records what this process asked of the store (requests, retries,
    /// bytes) in `.curate/storage/<name>.json` (`rank-00003-of-00008`,
    /// `tokenize`) of a folder of curate's, uploaded, and removes the
    /// staging folder: everything in it is in the store.
    pub fn finish(self) -> Result<(), Error> {
        let c = curate_store::counters();
        eprintln!(
            "curate: {}: {} requests, {} retried, {:.1} MB read, {:.1} MB written",
            self.url,
            c.requests,
            c.retries,
            c.bytes_read as f64 / 1e6,
            c.bytes_written as f64 / 1e6
        );
        let counts = serde_json::json!({
            "requests": c.requests,
            "retries": c.retries,
            "bytes_read": c.bytes_read,
            "bytes_written": c.bytes_written,
        });
        if self.bookkeeping {
            let path = self.local.join(".curate").join("storage").join(format!("{}.json", self.name));
            atomic::create_dir(path.parent().expect("a folder"))?;
            atomic::write(&path, &serde_json::to_vec_pretty(&counts).expect("serialisable"))?;
        }
        remove(&self.local)
    }
}

/// Whether `rel` is the marker of a unit of the run that another task than
/// `owner` owns (`.curate/units/unit-000012.json`): a task that brought
/// down every marker would make as many requests as the run has units.
fn not_owned(owner: Option<Task>, rel: &str) -> bool {
    let unit = rel.strip_prefix(".curate/units/unit-").and_then(|r| r.strip_suffix(".json"));
    match (owner, unit.and_then(|u| u.parse::<usize>().ok())) {
        (Some(task), Some(unit)) => !task.owns(unit),
        _ => false,
    }
}

fn remove(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(atomic::WriteError::at(dir)(e).into()),
        _ => Ok(()),
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_brings_down_only_its_own_unit_markers() {
        let task = Some(Task { rank: 1, world: 4 });
        assert!(!not_owned(task, ".curate/units/unit-000005.json"), "unit 5 is task 1's");
        assert!(not_owned(task, ".curate/units/unit-000006.json"));
        assert!(!not_owned(task, ".curate/run.json"));
        assert!(!not_owned(task, "tokens/.curate/units/unit-000006.json"), "tokenization's units are not the run's");
        assert!(!not_owned(None, ".curate/units/unit-000006.json"), "a command that is no task needs them all");
    }
}
