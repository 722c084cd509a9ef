//! Writes that are either complete or absent: a temporary name in the same
//! folder, then a rename, so a killed run never leaves half a file under a
//! final name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The hidden temporary name for `path`: `.name.tmp` beside it. Hidden so
/// that globs over the output (`*.parquet`) never see a partial file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Like [`write`], but with a temporary name unique to `owner`, for files
/// that several tasks may write at once (the merged stats).
pub fn write_shared(path: &Path, bytes: &[u8], owner: &str) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{owner}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// What a folder's recorded fingerprint says about a run that wants to use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// No fingerprint yet: this one is now recorded.
    Fresh,
    /// The folder holds the work of this very run (to resume).
    Same,
    /// The folder holds the work of another input or other options.
    Other,
}

/// Compares the fingerprint recorded at `path` with `fingerprint`, and
/// records it when there is none (as [`write_shared`] by `owner`, since
/// several tasks may start together).
pub fn claim(path: &Path, fingerprint: &str, owner: &str) -> io::Result<Claim> {
    match fs::read_to_string(path) {
        Ok(found) if found.trim() == fingerprint => Ok(Claim::Same),
        Ok(_) => Ok(Claim::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            write_shared(path, fingerprint.as_bytes(), owner)?;
            Ok(Claim::Fresh)
        }
        Err(e) => Err(e),
    }
}
