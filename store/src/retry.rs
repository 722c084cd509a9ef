//! The one retry loop every request goes through: `object_store`'s own
//! retries are turned off so that each retry is seen here and counted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Retries after the first attempt, at most.
const MAX_RETRIES: u32 = 10;
/// The first wait; it doubles with each retry, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(20);

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static RETRIES: AtomicU64 = AtomicU64::new(0);
static BYTES_READ: AtomicU64 = AtomicU64::new(0);
static BYTES_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// What this process asked of object stores so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after a transient failure (throttling, a 5xx, a
    /// cut connection, a timeout).
    pub retries: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

pub fn counters() -> Counters {
    Counters {
        requests: REQUESTS.load(Ordering::Relaxed),
        retries: RETRIES.load(Ordering::Relaxed),
        bytes_read: BYTES_READ.load(Ordering::Relaxed),
        bytes_written: BYTES_WRITTEN.load(Ordering::Relaxed),
    }
}

/// Counts a retry made outside [`retrying`]: a multipart upload sent again
/// whole after one of its parts failed.
pub(crate) fn again() {
    RETRIES.fetch_add(1, Ordering::Relaxed);
}

/// Counts a request sent outside [`retrying`] (a part of an upload).
pub(crate) fn sent() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn read(n: u64) {
    BYTES_READ.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn written(n: u64) {
    BYTES_WRITTEN.fetch_add(n, Ordering::Relaxed);
}

/// Runs `attempt` until it succeeds, fails for good, or has been retried
/// [`MAX_RETRIES`] times, waiting longer before each retry.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut wait = FIRST_WAIT;
    let mut retries = 0;
    loop {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if retries < MAX_RETRIES && transient(&e) => {
                retries += 1;
                RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Failures that asking again cannot mend are not retried.
fn transient(e: &object_store::Error) -> bool {
    use object_store::Error::*;
    !matches!(
        e,
        NotFound { .. }
            | InvalidPath { .. }
            | NotSupported { .. }
            | AlreadyExists { .. }
            | Precondition { .. }
            | NotModified { .. }
            | NotImplemented { .. }
            | PermissionDenied { .. }
            | Unauthenticated { .. }
            | UnknownConfigurationKey { .. }
    )
}
