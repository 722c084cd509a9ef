//! Writes that are either complete or absent, and durable before anything
//! claims them: a temporary name in the same folder, an fsync of the file, a
//! rename, then an fsync of the folder. A killed process never leaves half a
//! file under a final name, and a crashed node never comes back with a
//! completion marker whose files the disk lost: markers are written through
//! here too, after the files they vouch for.
//!
//! A process may also install a [`Mirror`]: every file is then handed to
//! it once durable, in the order written, so a copy elsewhere (the object
//! store behind an `s3://` output) receives shards before the markers that
//! vouch for them.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::runtime::hooks;

/// A file or folder that could not be written, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl WriteError {
    pub fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
        move |source| WriteError { path: path.to_owned(), source }
    }
}

/// Where each file written here is copied once it is durable.
pub trait Mirror: Send + Sync {
    /// Copies the file now at `path`; an error fails the write.
    fn copy(&self, path: &Path) -> io::Result<()>;
    /// Removes the copies of everything under the folder `dir`.
    fn remove(&self, dir: &Path) -> io::Result<()>;
}

static MIRROR: OnceLock<Box<dyn Mirror>> = OnceLock::new();

/// Installs the process's mirror; only the first call has effect (one
/// output per process).
pub fn mirror_to(mirror: Box<dyn Mirror>) {
    let _ = MIRROR.set(mirror);
}

fn mirrored(path: &Path) -> Result<(), WriteError> {
    match MIRROR.get() {
        Some(mirror) => mirror.copy(path).map_err(WriteError::at(path)),
        None => Ok(()),
    }
}

/// The hidden temporary name for `path`: `.name.tmp` beside it. Hidden so
/// that globs over the output (`*.parquet`) never see a partial file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<(), WriteError> {
    fs::create_dir_all(dir).map_err(WriteError::at(dir))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = temp_path(path);
    hooks::committing(path, || {
        let _ = fs::write(&tmp, bytes);
    });
    write_through(&tmp, path, bytes)
}

/// Like [`write`], but with a temporary name unique to `owner`, for files
/// that several tasks may write at once (a stage's fingerprint, the merged
/// stats).
pub fn write_shared(path: &Path, bytes: &[u8], owner: &str) -> Result<(), WriteError> {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    write_through(&path.with_file_name(format!(".{name}.{owner}.tmp")), path, bytes)
}

fn write_through(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut file = File::create(tmp).map_err(WriteError::at(path))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(WriteError::at(path))?;
    fs::rename(tmp, path).map_err(WriteError::at(path))?;
    sync_folder_of(path)?;
    mirrored(path)
}

/// Removes the folder `dir` and all it holds (scratch files a finished
/// stage no longer needs), and their copies in the mirror. A folder that is
/// not there is no error.
pub fn remove_dir(dir: &Path) -> Result<(), WriteError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(WriteError::at(dir)(e)),
        _ => {}
    }
    match MIRROR.get() {
        Some(mirror) => mirror.remove(dir).map_err(WriteError::at(dir)),
        None => Ok(()),
    }
}

/// Moves files written under their [`temp_path`]s to their final names:
/// each synced first, then renamed, then their folders synced.
pub fn publish(paths: &[PathBuf]) -> Result<(), WriteError> {
    for path in paths {
        let tmp = temp_path(path);
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(WriteError::at(path))?;
        fs::rename(&tmp, path).map_err(WriteError::at(path))?;
    }
    let mut folders: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        sync_folder(folder)?;
    }
    paths.iter().try_for_each(|p| mirrored(p))
}

fn sync_folder_of(path: &Path) -> Result<(), WriteError> {
    match path.parent() {
        Some(folder) => sync_folder(folder),
        None => Ok(()),
    }
}

/// Makes the folder's entries (a rename into it) durable.
fn sync_folder(folder: &Path) -> Result<(), WriteError> {
    let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
    File::open(folder).and_then(|f| f.sync_all()).map_err(WriteError::at(folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        write_shared(&path, b"three", "rank-1").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn publishing_renames_what_was_written_under_temporary_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = ["x", "y"].iter().map(|n| dir.path().join(n)).collect();
        for p in &paths {
            fs::write(temp_path(p), p.to_string_lossy().as_bytes()).unwrap();
        }
        publish(&paths).unwrap();
        assert!(paths.iter().all(|p| p.is_file() && !temp_path(p).exists()));
        let err = publish(&[dir.path().join("never-written")]).unwrap_err();
        assert!(err.to_string().contains("never-written"), "{err}");
    }

    #[test]
    fn a_write_under_a_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "").unwrap();
        let err = write(&dir.path().join("f/x.json"), b"").unwrap_err();
        assert!(err.to_string().starts_with("cannot write ") && err.to_string().contains("f/x.json"), "{err}");
    }
}
