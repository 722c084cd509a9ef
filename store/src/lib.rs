//! Object storage for curate's readers and writers: `s3://bucket/prefix`
//! (and `gs://`, `az://`) through the `object_store` crate, behind a
//! blocking API that the engine's threads call directly.
//!
//! - [`Bucket`]: list, head, get a byte range, put (multipart for large
//!   files), delete; one per bucket per process, sharing one small async
//!   runtime.
//! - [`RangeReader`]: `Read + Seek` over an object by ranged GETs, for
//!   JSON Lines byte ranges and Parquet row groups.
//! - Every request goes through one retry loop with exponential backoff
//!   (throttling, 5xx, cut connections), counted in [`counters`].
//!
//! Credentials and endpoint come from the environment as the AWS tools read
//! them (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `AWS_REGION`, ...), and
//! for S3 from a profile in `~/.aws/credentials` and `~/.aws/config`
//! (`AWS_PROFILE`) where the environment does not set them.

mod bucket;
mod profile;
mod reader;
mod retry;

pub use bucket::{Bucket, Object};
pub use reader::RangeReader;
pub use retry::{counters, Counters};

/// Whether `path` names an object store rather than a local path.
pub fn is_remote(path: &str) -> bool {
    SCHEMES.iter().any(|s| path.strip_prefix(s).is_some_and(|rest| rest.starts_with("://")))
}

const SCHEMES: [&str; 3] = ["s3", "gs", "az"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: not an object store address; use s3://bucket/prefix, gs://bucket/prefix or az://container/prefix")]
    BadUrl(String),
    #[error("cannot set up access to {url}: {message}")]
    Setup { url: String, message: String },
    #[error("{url}: {source}")]
    Request {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the object asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Request { source: object_store::Error::NotFound { .. }, .. })
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> std::io::Error {
        let kind = if e.is_not_found() { std::io::ErrorKind::NotFound } else { std::io::ErrorKind::Other };
        std::io::Error::new(kind, e)
    }
}
