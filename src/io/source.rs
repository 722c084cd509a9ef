//! An input file's bytes, wherever the file is: a local file, or an object
//! in an object store read by ranged GETs (`curate-store`). Both seek, so
//! a unit reads only its byte range or row group either way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use curate_store::{Bucket, RangeReader};
use parquet::file::reader::{ChunkReader, Length};

/// Where a remote input file lives.
#[derive(Debug, Clone)]
pub struct Remote {
    pub bucket: Arc<Bucket>,
    pub key: String,
}

pub enum Source {
    Local(File),
    Remote(RangeReader),
}

impl Source {
    /// The file at `path`, or the object `remote` of `size` bytes.
    pub fn open(path: &std::path::Path, remote: Option<&Remote>, size: u64) -> io::Result<Source> {
        Ok(match remote {
            Some(r) => Source::Remote(RangeReader::new(r.bucket.clone(), r.key.clone(), size)),
            None => Source::Local(File::open(path)?),
        })
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Local(f) => f.read(buf),
            Source::Remote(r) => r.read(buf),
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Source::Local(f) => f.seek(to),
            Source::Remote(r) => r.seek(to),
        }
    }
}

impl Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::Local(f) => Length::len(f),
            Source::Remote(r) => r.size(),
        }
    }
}

/// What the Parquet reader asks of a file: the footer, then each column
/// chunk of the row groups it reads, each one ranged read on an object.
impl ChunkReader for Source {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            Source::Local(f) => Box::new(f.get_read(start)?),
            Source::Remote(r) => Box::new(r.reader_at(start)),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Source::Local(f) => f.get_bytes(start, length),
            Source::Remote(r) => {
                let bytes = r.range(start, length)?;
                if bytes.len() != length {
                    return Err(parquet::errors::ParquetError::EOF(format!(
                        "expected {length} bytes at {start}, the object has {}",
                        bytes.len()
                    )));
                }
                Ok(bytes)
            }
        }
    }
}
