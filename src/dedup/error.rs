//! What goes wrong in the dedup stages, each with the file or folder it
//! concerns, and which way it exits (see [`DedupError::class`]).

use std::path::{Path, PathBuf};

use super::minhash::ParamsError;
use crate::io::atomic::WriteError;
use crate::runtime::ErrorClass;
use crate::stage::StageError;

#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// An earlier stage's file is not there.
    #[error("{}: missing; {hint}", path.display())]
    NotReady { path: PathBuf, hint: &'static str },
    /// Some units of an earlier stage (`signatures`, `lines`) are missing.
    #[error(
        "{}: the {} of {missing} of {units} units are missing (unit {first} first); finish `curate dedup {stage}` first",
        work.display(),
        if *stage == "lines" { "line counts" } else { stage }
    )]
    Incomplete { work: PathBuf, stage: &'static str, missing: usize, units: usize, first: usize },
    #[error("--index {}: {problem}", work.display())]
    Index { work: PathBuf, problem: Box<IndexProblem> },
    #[error(
        "{}: the bucket stage here cut bands into {found} ranges, not {wanted}; use the same --ranges, or delete {}",
        path.display(),
        path.parent().unwrap_or(path).display()
    )]
    Ranges { path: PathBuf, found: String, wanted: usize },
    /// An intermediate file that does not verify.
    #[error("{}: {fault}", path.display())]
    Damaged { path: PathBuf, fault: Fault },
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{}: {source}: the merge opens all {files} counts files at once; raise `ulimit -n`", path.display())]
    TooManyFiles { path: PathBuf, source: std::io::Error, files: usize },
}

impl DedupError {
    pub fn class(&self) -> ErrorClass {
        match self {
            DedupError::Stage(e) => e.class(),
            DedupError::Params(_)
            | DedupError::NotReady { .. }
            | DedupError::Incomplete { .. }
            | DedupError::Index { .. }
            | DedupError::Ranges { .. } => ErrorClass::Usage,
            DedupError::Damaged { .. }
            | DedupError::Read { .. }
            | DedupError::Write(_)
            | DedupError::TooManyFiles { .. } => ErrorClass::Failed,
        }
    }

    pub(crate) fn damaged(path: &Path) -> impl FnOnce(Fault) -> DedupError + '_ {
        move |fault| DedupError::Damaged { path: path.to_owned(), fault }
    }

    pub(crate) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> DedupError + '_ {
        move |source| DedupError::Read { path: path.to_owned(), source }
    }
}

/// Reads the file at `path` and decodes it, naming the path in either failure.
pub(crate) fn read_file<T>(path: &Path, decode: impl FnOnce(&[u8]) -> Result<T, Fault>) -> Result<T, DedupError> {
    let bytes = std::fs::read(path).map_err(DedupError::read(path))?;
    decode(&bytes).map_err(DedupError::damaged(path))
}

/// Why an earlier dataset cannot serve as the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexProblem {
    #[error("its signatures were made with {theirs}; this run uses {ours}: they cannot be matched")]
    Parameters { theirs: String, ours: String },
    #[error(
        "that dataset was itself deduplicated against another; index the dataset it was matched against separately"
    )]
    Chained,
    #[error("{missing} of its {units} units have no signatures (unit {first} first)")]
    Incomplete { missing: usize, units: usize, first: usize },
    #[error("{0}")]
    Unusable(Box<DedupError>),
}

/// How an intermediate file fails to verify.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("not a curate {what} file (no {magic} header)")]
    NotThisKind { what: &'static str, magic: String },
    #[error("{what} file version {found}; this curate reads version {}", super::frame::VERSION)]
    Version { what: &'static str, found: u32 },
    #[error("truncated inside its header")]
    TruncatedHeader,
    #[error("unreadable header: {0}")]
    Header(serde_json::Error),
    #[error("{found} bytes, but its header announces {announced}: the file is truncated or has extra bytes")]
    Length { found: u64, announced: u64 },
    #[error("truncated while being read")]
    Truncated,
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    /// Written for other parameters, another unit or another part.
    #[error("written {0}")]
    Mismatch(String),
    /// Records not in the order the file promises.
    #[error("{0} (the file must be sorted)")]
    Disorder(String),
    /// Records that do not decode.
    #[error("{0}")]
    Malformed(String),
}
