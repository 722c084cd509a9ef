//! datatrove's tokenized files, which nanotron reads: `NAME.ds` holds the
//! tokens of every document back to back (little-endian uint16, or uint32
//! past 65,536 tokens), `NAME.ds.index` the end of each document in tokens
//! (little-endian uint64), and `NAME.ds.metadata` the tokenizer name and
//! token size, the token count, and that count for humans
//! (`pipeline/tokens/tokenizer.py`, `TokenizedFile`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::TokenWidth;

/// The three files of `NAME.ds`, given its path.
pub fn companions(ds: &Path) -> (PathBuf, PathBuf) {
    let name = ds.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (ds.with_file_name(format!("{name}.index")), ds.with_file_name(format!("{name}.metadata")))
}

pub struct Writer {
    tokens: BufWriter<File>,
    index: PathBuf,
    metadata: PathBuf,
    width: TokenWidth,
    tokenizer: String,
    ends: Vec<u64>,
    written: u64,
}

impl Writer {
    /// Writes to `ds`, `index` and `metadata` (the caller's names, which may
    /// be temporary ones).
    pub fn create(ds: &Path, index: &Path, metadata: &Path, width: TokenWidth, tokenizer: &str) -> io::Result<Writer> {
        Ok(Writer {
            tokens: BufWriter::with_capacity(1 << 20, File::create(ds)?),
            index: index.to_owned(),
            metadata: metadata.to_owned(),
            width,
            tokenizer: tokenizer.to_owned(),
            ends: Vec::new(),
            written: 0,
        })
    }

    pub fn add(&mut self, tokens: &[u32]) -> io::Result<()> {
        for &t in tokens {
            match self.width {
                TokenWidth::U16 => {
                    let t =
                        u16::try_from(t).map_err(|_| io::Error::other(format!("token id {t} does not fit uint16")))?;
                    self.tokens.write_all(&t.to_le_bytes())?;
                }
                TokenWidth::U32 => self.tokens.write_all(&t.to_le_bytes())?,
            }
        }
        self.written += tokens.len() as u64;
        self.ends.push(self.written);
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.tokens.flush()?;
        let mut index = BufWriter::new(File::create(&self.index)?);
        for end in &self.ends {
            index.write_all(&end.to_le_bytes())?;
        }
        index.flush()?;
        let human = match self.written {
            n if n >= 1_000_000_000 => format!("{:.1} GT", n as f64 / 1e9),
            n if n >= 1_000_000 => format!("{:.1} MT", n as f64 / 1e6),
            n if n >= 1_000 => format!("{:.1} kT", n as f64 / 1e3),
            n => format!("{n} T"),
        };
        let text = format!("{}|{}\n{}\n{human}", self.tokenizer, self.width.bytes(), self.written);
        std::fs::write(&self.metadata, text)
    }
}

/// The documents of `NAME.ds`, read whole (for checks and tests).
pub fn read(ds: &Path, width: TokenWidth) -> io::Result<Vec<Vec<u32>>> {
    let (index, _) = companions(ds);
    let bytes = std::fs::read(ds)?;
    let tokens: Vec<u32> = match width {
        TokenWidth::U16 => bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect(),
        TokenWidth::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
    };
    let ends: Vec<usize> =
        std::fs::read(&index)?.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8")) as usize).collect();
    let mut docs = Vec::with_capacity(ends.len());
    let mut start = 0;
    for end in ends {
        if end < start || end > tokens.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: document end {end} out of order", index.display()),
            ));
        }
        docs.push(tokens[start..end].to_vec());
        start = end;
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_index_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path().join("train-00000.ds");
        let (index, metadata) = companions(&ds);
        assert_eq!(index, dir.path().join("train-00000.ds.index"));
        let mut w = Writer::create(&ds, &index, &metadata, TokenWidth::U16, "tok.json").unwrap();
        for doc in [&[1u32, 2, 3][..], &[], &[65535]] {
            w.add(doc).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(read(&ds, TokenWidth::U16).unwrap(), vec![vec![1, 2, 3], vec![], vec![65535]]);
        assert_eq!(std::fs::read_to_string(&metadata).unwrap(), "tok.json|2\n4\n4 T");
        assert_eq!(std::fs::read(&index).unwrap().len(), 24);
    }
}
