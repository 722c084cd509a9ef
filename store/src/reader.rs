//! `Read + Seek` over an object, by ranged GETs of a few megabytes: what
//! lets a task read its byte range of a JSON Lines file, or one row group
//! of a Parquet file, without fetching the rest.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;

use crate::Bucket;

/// Bytes fetched by the first GET; each next GET fetches twice as many, up
/// to [`MAX_BLOCK`]: a reader that wants a few bytes (a footer, the line
/// that straddles a range's end) costs little, and a long read few
/// requests.
const FIRST_BLOCK: u64 = 256 << 10;
const MAX_BLOCK: u64 = 8 << 20;

pub struct RangeReader {
    bucket: Arc<Bucket>,
    key: String,
    size: u64,
    pos: u64,
    block: Bytes,
    block_start: u64,
    next_block: u64,
}

impl RangeReader {
    /// A reader of the object at `key`, which is `size` bytes long (as its
    /// listing said).
    pub fn new(bucket: Arc<Bucket>, key: String, size: u64) -> RangeReader {
        RangeReader { bucket, key, size, pos: 0, block: Bytes::new(), block_start: 0, next_block: FIRST_BLOCK }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes `[start, start + len)`, in one ranged GET.
    pub fn range(&self, start: u64, len: usize) -> io::Result<Bytes> {
        let end = (start + len as u64).min(self.size);
        if start >= end {
            return Ok(Bytes::new());
        }
        Ok(self.bucket.get_range(&self.key, start..end)?)
    }

    /// A second reader of the same object, starting at `start`, whose
    /// first GET is small: the Parquet reader takes one for each page
    /// header, a few dozen bytes, and fetches the page itself by range.
    pub fn reader_at(&self, start: u64) -> RangeReader {
        let mut other = RangeReader::new(self.bucket.clone(), self.key.clone(), self.size);
        other.pos = start;
        other.next_block = 16 << 10;
        other
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let end_of_block = self.block_start + self.block.len() as u64;
        if self.pos < self.block_start || self.pos >= end_of_block {
            let len = self.next_block.min(self.size - self.pos) as usize;
            self.next_block = (self.next_block * 2).min(MAX_BLOCK);
            self.block = self.range(self.pos, len)?;
            self.block_start = self.pos;
            if self.block.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.block_start) as usize;
        let n = buf.len().min(self.block.len() - offset);
        buf[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
