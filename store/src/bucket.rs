//! One bucket (or container) of an object store, and its blocking calls.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::retry::{self, retrying};
use crate::StoreError;

/// Files up to this size go up in one PUT; larger ones in parts of this
/// size, a few at a time, so that a shard of many gigabytes never sits in
/// memory whole.
const PART: usize = 16 << 20;
const PARTS_IN_FLIGHT: usize = 4;

pub struct Bucket {
    /// `s3://bucket`: what keys are appended to in messages.
    url: String,
    store: Arc<dyn ObjectStore>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// An object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// When it was last written: seconds and nanoseconds since the epoch.
    pub modified: (u64, u32),
}

/// The runtime every bucket's requests run on: two threads are plenty for
/// a few requests in flight per engine thread.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("curate-store")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

impl Bucket {
    /// The bucket that `url` (`s3://bucket/some/prefix`) is in, and the key
    /// prefix after it (`some/prefix`, without slashes at either end). One
    /// client per bucket per process, made on first use.
    pub fn open(url: &str) -> Result<(Arc<Bucket>, String), StoreError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| StoreError::BadUrl(url.to_owned()))?;
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || !crate::SCHEMES.contains(&scheme) {
            return Err(StoreError::BadUrl(url.to_owned()));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        static OPEN: OnceLock<Mutex<HashMap<String, Arc<Bucket>>>> = OnceLock::new();
        let root = format!("{scheme}://{name}");
        let mut open = OPEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = open.get(&root) {
            return Ok((bucket.clone(), prefix));
        }
        let setup = |e: object_store::Error| StoreError::Setup { url: root.clone(), message: e.to_string() };
        // Retries are ours (see `retry`), so that each is counted.
        let no_retries = RetryConfig { max_retries: 0, ..RetryConfig::default() };
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" => Arc::new(
                crate::profile::s3_builder().with_bucket_name(name).with_retry(no_retries).build().map_err(setup)?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(name)
                    .with_retry(no_retries)
                    .build()
                    .map_err(setup)?,
            ),
            _ => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(name)
                    .with_retry(no_retries)
                    .build()
                    .map_err(setup)?,
            ),
        };
        let bucket = Arc::new(Bucket { url: root.clone(), store });
        open.insert(root, bucket.clone());
        Ok((bucket, prefix))
    }

    /// The address of `key` in this bucket, for messages and plans.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    fn failed(&self, key: &str) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let url = self.url(key);
        move |source| StoreError::Request { url, source }
    }

    /// Every object whose key is `prefix` or lies under `prefix/`, sorted
    /// by key. An empty prefix lists the whole bucket.
    pub fn list(&self, prefix: &str) -> Result<Vec<Object>, StoreError> {
        let under = (!prefix.is_empty()).then(|| Key::from(prefix));
        let mut objects: Vec<Object> = runtime()
            .block_on(retrying(|| self.store.list(under.as_ref()).try_collect::<Vec<_>>()))
            .map_err(self.failed(prefix))?
            .into_iter()
            .map(|meta| Object {
                key: meta.location.to_string(),
                size: meta.size,
                modified: (meta.last_modified.timestamp().max(0) as u64, meta.last_modified.timestamp_subsec_nanos()),
            })
            .collect();
        if !prefix.is_empty() {
            // `object_store` lists by path segments; an object named exactly
            // `prefix` is found by a HEAD.
            if let Some(object) = self.head(prefix)? {
                objects.push(object);
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects.dedup_by(|a, b| a.key == b.key);
        Ok(objects)
    }

    /// The object at `key`, or `None` where there is none.
    pub fn head(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let at = Key::from(key);
        match runtime().block_on(retrying(|| self.store.head(&at))) {
            Ok(meta) => Ok(Some(Object {
                key: key.to_owned(),
                size: meta.size,
                modified: (meta.last_modified.timestamp().max(0) as u64, meta.last_modified.timestamp_subsec_nanos()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(key)(e)),
        }
    }

    /// The whole object at `key`, or `None` where there is none.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let at = Key::from(key);
        let got = runtime().block_on(retrying(|| async { self.store.get(&at).await?.bytes().await }));
        match got {
            Ok(bytes) => {
                retry::read(bytes.len() as u64);
                Ok(Some(bytes))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(key)(e)),
        }
    }

    /// Bytes `range` of the object at `key`.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let at = Key::from(key);
        let bytes =
            runtime().block_on(retrying(|| self.store.get_range(&at, range.clone()))).map_err(self.failed(key))?;
        retry::read(bytes.len() as u64);
        Ok(bytes)
    }

    /// Writes `bytes` as the object at `key`. The object appears whole or
    /// not at all: S3 publishes a PUT only once it is complete.
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let at = Key::from(key);
        let n = bytes.len() as u64;
        runtime()
            .block_on(retrying(|| self.store.put(&at, PutPayload::from_bytes(bytes.clone()))))
            .map_err(self.failed(key))?;
        retry::written(n);
        Ok(())
    }

    /// Uploads the local file at `local` as the object at `key`: in one
    /// PUT, or above 16 MiB as a multipart upload, which the store
    /// publishes under `key` only when it is completed. A failed attempt
    /// (a part, or the completion) is aborted and the whole file sent again.
    pub fn put_file(&self, local: &Path, key: &str) -> Result<(), StoreError> {
        let local_error = |source| StoreError::Local { path: local.to_owned(), source };
        let size = std::fs::metadata(local).map_err(local_error)?.len();
        if size <= PART as u64 {
            let bytes = std::fs::read(local).map_err(local_error)?;
            return self.put(key, Bytes::from(bytes));
        }
        let at = Key::from(key);
        let mut attempt = 0u32;
        loop {
            match self.put_parts(local, &at) {
                Ok(()) => {
                    retry::written(size);
                    return Ok(());
                }
                Err(Upload::Local(source)) => return Err(local_error(source)),
                Err(Upload::Store(e)) if attempt < 3 && !matches!(e, object_store::Error::NotFound { .. }) => {
                    attempt += 1;
                    retry::again();
                }
                Err(Upload::Store(e)) => return Err(self.failed(key)(e)),
            }
        }
    }

    fn put_parts(&self, local: &Path, at: &Key) -> Result<(), Upload> {
        let mut file = std::fs::File::open(local).map_err(Upload::Local)?;
        runtime().block_on(async {
            let mut upload = retrying(|| self.store.put_multipart(at)).await.map_err(Upload::Store)?;
            let sent = match send_parts(upload.as_mut(), &mut file).await {
                Ok(()) => {
                    retry::sent();
                    upload.complete().await.map(|_| ()).map_err(Upload::Store)
                }
                Err(e) => Err(e),
            };
            if sent.is_err() {
                abort(upload.as_mut()).await;
            }
            sent
        })
    }

    /// Deletes the object at `key`; one that is not there is no error.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let at = Key::from(key);
        match runtime().block_on(retrying(|| self.store.delete(&at))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(key)(e)),
        }
    }
}

/// Sends the file's parts, a few at a time.
async fn send_parts(upload: &mut dyn MultipartUpload, file: &mut std::fs::File) -> Result<(), Upload> {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let mut buf = vec![0u8; PART];
        let n = read_full(file, &mut buf).map_err(Upload::Local)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        retry::sent();
        in_flight.push(upload.put_part(PutPayload::from(buf)));
        while in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(part) = in_flight.next().await {
                part.map_err(Upload::Store)?;
            }
        }
    }
    while let Some(part) = in_flight.next().await {
        part.map_err(Upload::Store)?;
    }
    Ok(())
}

/// Aborts a failed upload, so that its parts are not kept (and billed):
/// asked again a few times, as any request is, before giving up.
async fn abort(upload: &mut dyn MultipartUpload) {
    let mut wait = std::time::Duration::from_millis(100);
    for _ in 0..5 {
        retry::sent();
        if upload.abort().await.is_ok() {
            return;
        }
        retry::again();
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

enum Upload {
    Local(std::io::Error),
    Store(object_store::Error),
}

/// Fills `buf` unless the file ends first; returns how much it read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
