//! Megatron-LM's `MMapIndexedDataset`: `.bin` holds the tokens of every
//! sequence back to back, `.idx` holds where each starts.
//!
//! `.idx` layout (little-endian), as megatron-core's `_IndexWriter` writes it:
//!
//! ```text
//! b"MMIDIDX\x00\x00"   magic, 9 bytes
//! u64 1                version
//! u8  dtype code       8 = uint16, 4 = int32 (Megatron has no uint32)
//! u64 S                sequence count
//! u64 D                document count + 1
//! i32 × S              tokens per sequence
//! i64 × S              byte offset of each sequence in .bin
//! i64 × D              document boundaries: 0, then the sequence count after each document
//! ```
//!
//! Here each document is one sequence, so the boundaries are `0..=S`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::TokenWidth;

const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
const VERSION: u64 = 1;

fn dtype_code(width: TokenWidth) -> u8 {
    match width {
        TokenWidth::U16 => 8,
        TokenWidth::U32 => 4,
    }
}

/// Writes one `.bin`/`.idx` pair; the index is written by [`Writer::finish`].
pub struct Writer {
    bin: BufWriter<File>,
    idx_path: PathBuf,
    width: TokenWidth,
    lengths: Vec<i32>,
    buf: Vec<u8>,
}

impl Writer {
    pub fn create(bin_path: &Path, idx_path: &Path, width: TokenWidth) -> io::Result<Writer> {
        Ok(Writer {
            bin: BufWriter::with_capacity(1 << 20, File::create(bin_path)?),
            idx_path: idx_path.to_owned(),
            width,
            lengths: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// Appends one document. Ids must fit the width (checked by the caller,
    /// which knows the vocabulary); a u32 id above `i32::MAX` is an error
    /// because Megatron reads wide shards as int32.
    pub fn add(&mut self, tokens: &[u32]) -> io::Result<()> {
        let len = i32::try_from(tokens.len()).map_err(|_| io::Error::other("a document of more than 2^31 tokens"))?;
        self.buf.clear();
        match self.width {
            TokenWidth::U16 => {
                for &t in tokens {
                    let t =
                        u16::try_from(t).map_err(|_| io::Error::other(format!("token id {t} does not fit uint16")))?;
                    self.buf.extend_from_slice(&t.to_le_bytes());
                }
            }
            TokenWidth::U32 => {
                for &t in tokens {
                    let t =
                        i32::try_from(t).map_err(|_| io::Error::other(format!("token id {t} does not fit int32")))?;
                    self.buf.extend_from_slice(&t.to_le_bytes());
                }
            }
        }
        self.bin.write_all(&self.buf)?;
        self.lengths.push(len);
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.bin.flush()?;
        let mut idx = BufWriter::new(File::create(&self.idx_path)?);
        let count = self.lengths.len() as u64;
        idx.write_all(MAGIC)?;
        idx.write_all(&VERSION.to_le_bytes())?;
        idx.write_all(&[dtype_code(self.width)])?;
        idx.write_all(&count.to_le_bytes())?;
        idx.write_all(&(count + 1).to_le_bytes())?;
        for len in &self.lengths {
            idx.write_all(&len.to_le_bytes())?;
        }
        let mut offset = 0i64;
        for &len in &self.lengths {
            idx.write_all(&offset.to_le_bytes())?;
            offset += i64::from(len) * self.width.bytes() as i64;
        }
        for i in 0..=count as i64 {
            idx.write_all(&i.to_le_bytes())?;
        }
        idx.flush()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

/// Random access to the documents of a `.bin`/`.idx` pair.
pub struct Reader {
    bin: File,
    bin_path: String,
    pub width: TokenWidth,
    lengths: Vec<i32>,
    pointers: Vec<i64>,
}

impl Reader {
    /// Opens `prefix.bin` and `prefix.idx`, checking the index against the
    /// data file's size.
    pub fn open(prefix: &Path) -> Result<Reader, ReadError> {
        let idx_path = prefix.with_extension("idx");
        let bin_path = prefix.with_extension("bin");
        let ip = idx_path.display().to_string();
        let bad = |message: String| ReadError::Format { path: ip.clone(), message };
        let idx = std::fs::read(&idx_path).map_err(|source| ReadError::Io { path: ip.clone(), source })?;
        if idx.len() < 34 || &idx[..9] != MAGIC {
            return Err(bad("not a Megatron index (no MMIDIDX header)".into()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(idx[at..at + 8].try_into().expect("8 bytes"));
        if u64_at(9) != VERSION {
            return Err(bad(format!("index version {} is not 1", u64_at(9))));
        }
        let width = match idx[17] {
            8 => TokenWidth::U16,
            4 => TokenWidth::U32,
            code => return Err(bad(format!("token dtype code {code} is not uint16 (8) or int32 (4)"))),
        };
        let (count, docs) = (u64_at(18) as usize, u64_at(26) as usize);
        let expected = 34 + count * 12 + docs * 8;
        if idx.len() != expected {
            return Err(bad(format!(
                "{} bytes, but {count} sequences and {docs} document marks need {expected}",
                idx.len()
            )));
        }
        let lengths: Vec<i32> =
            idx[34..34 + count * 4].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4"))).collect();
        let pointers: Vec<i64> = idx[34 + count * 4..34 + count * 12]
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let bp = bin_path.display().to_string();
        let bin = File::open(&bin_path).map_err(|source| ReadError::Io { path: bp.clone(), source })?;
        let size = bin.metadata().map_err(|source| ReadError::Io { path: bp.clone(), source })?.len() as i64;
        let end = pointers.last().zip(lengths.last()).map_or(0, |(p, l)| p + i64::from(*l) * width.bytes() as i64);
        if end != size {
            return Err(ReadError::Format { path: bp, message: format!("{size} bytes, but the index says {end}") });
        }
        Ok(Reader { bin, bin_path: bp, width, lengths, pointers })
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Tokens of document `i`.
    pub fn get(&self, i: usize) -> Result<Vec<u32>, ReadError> {
        let n = self.lengths[i] as usize;
        let mut bytes = vec![0u8; n * self.width.bytes()];
        self.bin
            .read_exact_at(&mut bytes, self.pointers[i] as u64)
            .map_err(|source| ReadError::Io { path: self.bin_path.clone(), source })?;
        Ok(match self.width {
            TokenWidth::U16 => bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect(),
            TokenWidth::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4"))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_both_widths_with_an_empty_document() {
        let dir = tempfile::tempdir().unwrap();
        for (width, big) in [(TokenWidth::U16, 65535), (TokenWidth::U32, 100_000)] {
            let prefix = dir.path().join(format!("{width:?}"));
            let mut w = Writer::create(&prefix.with_extension("bin"), &prefix.with_extension("idx"), width).unwrap();
            let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![], vec![big, 0]];
            for d in &docs {
                w.add(d).unwrap();
            }
            w.finish().unwrap();
            let r = Reader::open(&prefix).unwrap();
            assert_eq!(r.width, width);
            assert_eq!(r.len(), 3);
            for (i, d) in docs.iter().enumerate() {
                assert_eq!(&r.get(i).unwrap(), d);
            }
        }
    }

    #[test]
    fn ids_that_do_not_fit_and_damaged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s");
        let mut w =
            Writer::create(&prefix.with_extension("bin"), &prefix.with_extension("idx"), TokenWidth::U16).unwrap();
        assert!(w.add(&[70_000]).unwrap_err().to_string().contains("does not fit uint16"));
        w.add(&[1, 2]).unwrap();
        w.finish().unwrap();
        let bin = prefix.with_extension("bin");
        std::fs::write(&bin, [0u8; 3]).unwrap();
        let err = Reader::open(&prefix).err().unwrap().to_string();
        assert!(err.ends_with("s.bin: 3 bytes, but the index says 4"), "{err}");
        std::fs::write(prefix.with_extension("idx"), b"garbage").unwrap();
        assert!(Reader::open(&prefix).err().unwrap().to_string().contains("not a Megatron index"));
    }
}
