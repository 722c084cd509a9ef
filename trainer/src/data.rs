//! Token windows from curate's token shards.
//!
//! A split's shards, in manifest order, form one token stream (each
//! document ends with the tokenizer's end-of-text token, so documents are
//! packed back to back as GPT-2 and Megatron pack them). Window `i` is the
//! `seq_len + 1` tokens from `i * seq_len`: inputs are its first `seq_len`
//! tokens and targets its last `seq_len`.
//!
//! Training windows are visited in a seeded permutation, one per epoch.
//! Sample `g` of the run (counting every sequence of every micro-batch of
//! every rank) is window `perm_epoch[g % n]` with `epoch = g / n`, and rank
//! `r` of `w` takes the samples with `(g / batch) % w == r`. The position in
//! the data is therefore just the step: a resumed run, or another rank,
//! computes its windows without reading anyone else's state.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type};
use arrow_array::Array;
use curate_shards::{megatron, parquet_columns, Manifest, Split, TokenWidth};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::config::ShardFormat;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Manifest(#[from] curate_shards::manifest::ManifestError),
    #[error("{0}")]
    Megatron(#[from] megatron::ReadError),
    #[error("{path}: {message}")]
    Shard { path: String, message: String },
}

fn shard_error(path: &Path, message: impl ToString) -> DataError {
    DataError::Shard { path: path.display().to_string(), message: message.to_string() }
}

/// One split's tokens, readable at any offset of the concatenated stream.
/// Every token read is checked against the model's vocabulary, so that a
/// damaged shard is an error naming it rather than a failed embedding lookup.
pub struct TokenStream {
    parts: Vec<Part>,
    /// `starts[i]` is the stream offset of part `i`'s first token.
    starts: Vec<u64>,
    len: u64,
    vocab_size: u64,
}

fn out_of_vocabulary(path: &Path, token: u64, id: u64, vocab_size: u64) -> DataError {
    shard_error(path, format!("token {token} is id {id}, not below the model's vocab_size {vocab_size}: a damaged shard, or one made with another tokenizer"))
}

enum Part {
    /// A Megatron `.bin`, read in place: documents are stored back to back.
    Bin { file: File, path: PathBuf, width: TokenWidth },
    /// Tokenized Parquet, decoded once into memory.
    Memory(Vec<u32>),
}

impl TokenStream {
    /// Opens every shard of `split`, checking each against the manifest.
    pub fn open(
        dir: &Path,
        manifest: &Manifest,
        split: Split,
        format: ShardFormat,
        vocab_size: u64,
    ) -> Result<TokenStream, DataError> {
        let mut parts = Vec::new();
        let mut starts = Vec::new();
        let mut len = 0u64;
        for shard in manifest.shards(split) {
            let prefix = dir.join(&shard.name);
            let (part, tokens) = match format {
                ShardFormat::Megatron => {
                    // Opening the reader checks the index against the data file.
                    let reader = megatron::Reader::open(&prefix)?;
                    let path = prefix.with_extension("bin");
                    let file = File::open(&path).map_err(|e| shard_error(&path, e))?;
                    let bytes = file.metadata().map_err(|e| shard_error(&path, e))?.len();
                    (Part::Bin { file, path, width: reader.width }, bytes / reader.width.bytes() as u64)
                }
                ShardFormat::Parquet => {
                    let path = prefix.with_extension("parquet");
                    let tokens = read_parquet_tokens(&path)?;
                    if let Some((i, &id)) = tokens.iter().enumerate().find(|(_, &id)| u64::from(id) >= vocab_size) {
                        return Err(out_of_vocabulary(&path, i as u64, u64::from(id), vocab_size));
                    }
                    let n = tokens.len() as u64;
                    (Part::Memory(tokens), n)
                }
            };
            if tokens != shard.tokens {
                let file = prefix.with_extension(if format == ShardFormat::Megatron { "bin" } else { "parquet" });
                return Err(shard_error(&file, format!("{tokens} tokens, but manifest.json says {}", shard.tokens)));
            }
            starts.push(len);
            len += tokens;
            parts.push(part);
        }
        Ok(TokenStream { parts, starts, len, vocab_size })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies tokens `[offset, offset + out.len())` of the stream into `out`.
    pub fn read(&self, mut offset: u64, out: &mut [i64]) -> Result<(), DataError> {
        assert!(offset + out.len() as u64 <= self.len, "read past the end of the token stream");
        let mut filled = 0;
        let mut buf = Vec::new();
        while filled < out.len() {
            let i = self.starts.partition_point(|&s| s <= offset) - 1;
            let within = offset - self.starts[i];
            let part_len = self.starts.get(i + 1).copied().unwrap_or(self.len) - self.starts[i];
            let n = ((part_len - within) as usize).min(out.len() - filled);
            let dst = &mut out[filled..filled + n];
            match &self.parts[i] {
                Part::Memory(tokens) => {
                    for (d, &t) in dst.iter_mut().zip(&tokens[within as usize..]) {
                        *d = i64::from(t);
                    }
                }
                Part::Bin { file, path, width } => {
                    let w = width.bytes();
                    buf.resize(n * w, 0);
                    file.read_exact_at(&mut buf, within * w as u64).map_err(|e| shard_error(path, e))?;
                    match width {
                        TokenWidth::U16 => {
                            for (d, c) in dst.iter_mut().zip(buf.chunks_exact(2)) {
                                *d = i64::from(u16::from_le_bytes([c[0], c[1]]));
                            }
                        }
                        TokenWidth::U32 => {
                            for (d, c) in dst.iter_mut().zip(buf.chunks_exact(4)) {
                                *d = i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                            }
                        }
                    }
                    // Parquet shards were checked whole when loaded; a .bin is read in place.
                    if let Some(j) = dst.iter().position(|&id| id as u64 >= self.vocab_size) {
                        return Err(out_of_vocabulary(path, within + j as u64, dst[j] as u64, self.vocab_size));
                    }
                }
            }
            filled += n;
            offset += n as u64;
        }
        Ok(())
    }
}

fn read_parquet_tokens(path: &Path) -> Result<Vec<u32>, DataError> {
    let file = File::open(path).map_err(|e| shard_error(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| shard_error(path, e))?;
    let root = builder.parquet_schema().root_schema().get_fields();
    let Some(column) = root.iter().position(|f| f.name() == parquet_columns::TOKENS) else {
        return Err(shard_error(path, format!("no `{}` column: not a tokenized shard", parquet_columns::TOKENS)));
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let reader = builder.with_projection(mask).build().map_err(|e| shard_error(path, e))?;
    let mut tokens = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| shard_error(path, e))?;
        let Some(list) = batch.column(0).as_list_opt::<i32>() else {
            return Err(shard_error(path, format!("`tokens` is {}, not a list", batch.column(0).data_type())));
        };
        let values = list.values();
        // Only the values the offsets cover: a sliced list may hold more.
        let offsets = list.value_offsets();
        let (lo, hi) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
        if let Some(v) = values.as_primitive_opt::<UInt16Type>() {
            tokens.extend(v.values()[lo..hi].iter().map(|&t| u32::from(t)));
        } else if let Some(v) = values.as_primitive_opt::<UInt32Type>() {
            tokens.extend_from_slice(&v.values()[lo..hi]);
        } else {
            return Err(shard_error(path, format!("token ids are {}, not uint16 or uint32", values.data_type())));
        }
    }
    Ok(tokens)
}

/// What a split is read as: windows of a token stream (pre-training), or
/// rows of packed examples (shards with a loss mask).
pub enum Data {
    Windows(Windows),
    Packed(crate::packing::Rows),
}

impl Data {
    /// Sequences the sampler draws from.
    pub fn count(&self) -> u64 {
        match self {
            Data::Windows(w) => w.count(),
            Data::Packed(r) => r.count(),
        }
    }

    pub fn seq_len(&self) -> usize {
        match self {
            Data::Windows(w) => w.seq_len(),
            Data::Packed(r) => r.seq_len(),
        }
    }
}

/// Fixed-length windows of a token stream.
pub struct Windows {
    stream: TokenStream,
    seq_len: usize,
    count: u64,
}

impl Windows {
    pub fn new(stream: TokenStream, seq_len: usize) -> Windows {
        let count = stream.len().saturating_sub(1) / seq_len as u64;
        Windows { stream, seq_len, count }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Appends window `i` (`seq_len + 1` tokens) to `out`.
    pub fn read(&self, i: u64, out: &mut Vec<i64>) -> Result<(), DataError> {
        let start = out.len();
        out.resize(start + self.seq_len + 1, 0);
        self.stream.read(i * self.seq_len as u64, &mut out[start..])
    }
}

/// Which windows each rank reads at each step.
pub struct Sampler {
    seed: u64,
    windows: u64,
    batch_size: usize,
    accumulation: usize,
    rank: usize,
    world: usize,
    /// The permutation of the epoch last asked for.
    epoch: Option<(u64, Vec<u64>)>,
}

impl Sampler {
    pub fn new(seed: u64, windows: u64, batch_size: usize, accumulation: usize, rank: usize, world: usize) -> Sampler {
        assert!(windows > 0 && rank < world);
        Sampler { seed, windows, batch_size, accumulation, rank, world, epoch: None }
    }

    /// The windows of this rank's micro-batch `micro` of step `step`.
    pub fn micro_batch(&mut self, step: u64, micro: usize) -> Vec<u64> {
        let b = self.batch_size as u64;
        let first = ((step * self.accumulation as u64 + micro as u64) * self.world as u64 + self.rank as u64) * b;
        (first..first + b).map(|g| self.window(g)).collect()
    }

    fn window(&mut self, sample: u64) -> u64 {
        let epoch = sample / self.windows;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.epoch = Some((epoch, permutation(self.windows, self.seed, epoch)));
        }
        self.epoch.as_ref().expect("set above").1[(sample % self.windows) as usize]
    }
}

/// A Fisher–Yates shuffle of `0..n` driven by SplitMix64, so that the order
/// depends on nothing but the seed and the epoch.
pub fn permutation(n: u64, seed: u64, epoch: u64) -> Vec<u64> {
    let mut state = seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<u64> = (0..n).collect();
    for i in (1..n as usize).rev() {
        // Multiply-shift maps 64 random bits onto 0..=i without modulo bias worth noting.
        let j = ((u128::from(next()) * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_split_every_step_into_disjoint_slices() {
        let (windows, batch, accum) = (50, 3, 2);
        let mut single = Sampler::new(7, windows, batch * 4, accum, 0, 1);
        let mut ranks: Vec<Sampler> = (0..4).map(|r| Sampler::new(7, windows, batch, accum, r, 4)).collect();
        for step in 0..5 {
            for micro in 0..accum {
                let mut from_ranks: Vec<u64> = ranks.iter_mut().flat_map(|s| s.micro_batch(step, micro)).collect();
                let mut whole = single.micro_batch(step, micro);
                assert_eq!(from_ranks.len(), 12);
                from_ranks.sort();
                whole.sort();
                assert_eq!(from_ranks, whole, "step {step} micro {micro}");
            }
        }
    }

    #[test]
    fn an_epoch_visits_every_window_once_and_epochs_differ() {
        let mut s = Sampler::new(3, 40, 5, 1, 0, 1);
        let first: Vec<u64> = (0..8).flat_map(|step| s.micro_batch(step, 0)).collect();
        let second: Vec<u64> = (8..16).flat_map(|step| s.micro_batch(step, 0)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..40).collect::<Vec<_>>());
        assert_ne!(first, second);
        assert_ne!(first, (0..40).collect::<Vec<_>>());
        assert_eq!(permutation(40, 3, 0), permutation(40, 3, 0));
        assert_ne!(permutation(40, 3, 0), permutation(40, 4, 0));
    }
}
