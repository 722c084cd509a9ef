//! The loss mask beside Megatron's `.bin`: `NAME.mask.bin` holds one byte
//! per token (1: trained on, 0: read only), documents in the order of
//! `NAME.bin`, so that the `.idx` index locates a document's mask as it
//! locates its tokens (at its token offset rather than its byte offset).
//! Megatron itself ignores the file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// `train-00000.bin` → `train-00000.mask.bin`.
pub fn path_beside(bin: &Path) -> PathBuf {
    bin.with_extension("mask.bin")
}

pub struct Writer {
    out: BufWriter<File>,
    tokens: u64,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Writer> {
        Ok(Writer { out: BufWriter::with_capacity(1 << 20, File::create(path)?), tokens: 0 })
    }

    pub fn add(&mut self, mask: &[u8]) -> io::Result<()> {
        self.tokens += mask.len() as u64;
        self.out.write_all(mask)
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.tokens)
    }
}

/// A shard's whole mask; `tokens` is what the `.idx` counts, which the file
/// must match.
pub fn read(path: &Path, tokens: u64) -> io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() as u64 != tokens {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {} mask bytes for {tokens} tokens", path.display(), bytes.len()),
        ));
    }
    if let Some(at) = bytes.iter().position(|&b| b > 1) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: byte {at} is {}, not 0 or 1", path.display(), bytes[at]),
        ));
    }
    Ok(bytes)
}
