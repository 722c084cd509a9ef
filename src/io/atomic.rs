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
