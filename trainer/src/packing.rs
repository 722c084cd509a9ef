//! Supervised fine-tuning data: the examples of token shards that carry a
//! loss mask (`curate tokenize --chat`), packed into rows of `seq_len`
//! tokens by best-fit decreasing.
//!
//! An example keeps its own positions (0, 1, ...) and, through
//! [`crate::model::Packing`], attends only to itself, so a packed row
//! computes what its examples would one by one. Its targets are its next
//! tokens where the mask says the next token is trained on, and
//! [`IGNORE`] elsewhere: the prompt, the padding at a row's end, and its
//! own last token, which has no next token inside the example.
//!
//! Packing runs once over the whole split (examples longest first, each into
//! the fullest row it fits, ties broken by input order), so the rows, and
//! with them the run, depend on nothing but the data and `seq_len`. Without
//! packing each row holds one example and padding.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt16Type, UInt32Type, UInt8Type};
use arrow_array::Array;
use curate_shards::{loss_mask, megatron, parquet_columns, Manifest, Split};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::{Deserialize, Serialize};

use crate::config::ShardFormat;
use crate::data::DataError;
use crate::model::IGNORE;
use tch::Tensor;

/// One example: its tokens and, per token, whether it is trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub mask: Vec<u8>,
}

impl Example {
    /// Targets the loss counts: tokens after the first whose mask is 1.
    fn trained(&self) -> usize {
        self.mask.iter().skip(1).filter(|&&m| m == 1).count()
    }
}

/// What to do with an example longer than `seq_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Overlong {
    /// Keep its first `seq_len` tokens (as TRL's `max_length` does).
    #[default]
    Truncate,
    /// Leave it out.
    Drop,
}

/// How a split was packed; written to metrics.jsonl at the start of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackStats {
    pub examples: u64,
    pub truncated: u64,
    pub dropped_overlong: u64,
    /// Examples left with no trained target (after truncation, or a mask of zeros).
    pub dropped_untrained: u64,
    pub rows: u64,
    pub tokens: u64,
    pub padding_tokens: u64,
    /// padding / (rows × seq_len)
    pub padding_share: f64,
    pub trained_tokens: u64,
}

/// One row's tensors' contents, `seq_len` each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Tokens before the padding.
    pub len: usize,
    pub tokens: Vec<i64>,
    pub targets: Vec<i64>,
    pub positions: Vec<i64>,
    pub segments: Vec<i64>,
}

/// A split's examples in rows.
pub struct Rows {
    examples: Vec<Example>,
    /// Example indices of each row, in placement order.
    rows: Vec<Vec<usize>>,
    seq_len: usize,
    pub stats: PackStats,
    /// Preference pairs: rows `2i` and `2i + 1` are pair `i`'s chosen and
    /// rejected completions, and the sampler draws pairs.
    pub pairs: Option<Pairs>,
}

/// What DPO needs beside the rows.
pub struct Pairs {
    pub config: crate::dpo::DpoConfig,
    /// `[pairs, 2]` summed log-probabilities of the reference model, once
    /// its pass has run.
    pub reference: Option<Tensor>,
}

impl Rows {
    /// Sequences the sampler draws from (pairs, for preference data).
    pub fn count(&self) -> u64 {
        match self.pairs {
            Some(_) => self.rows.len() as u64 / 2,
            None => self.rows.len() as u64,
        }
    }

    /// Rows of the split (twice the pairs for preference data).
    pub fn rows(&self) -> u64 {
        self.rows.len() as u64
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Row `i`: its examples back to back, then padding (token 0, no
    /// target, a segment of its own).
    pub fn row(&self, i: u64) -> Row {
        let n = self.seq_len;
        let mut row = Row {
            len: 0,
            tokens: Vec::with_capacity(n),
            targets: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
            segments: Vec::with_capacity(n),
        };
        let members = &self.rows[i as usize];
        for (segment, &e) in members.iter().enumerate() {
            let ex = &self.examples[e];
            for (p, &t) in ex.tokens.iter().enumerate() {
                row.tokens.push(i64::from(t));
                row.positions.push(p as i64);
                row.segments.push(segment as i64);
                row.targets.push(match (ex.tokens.get(p + 1), ex.mask.get(p + 1)) {
                    (Some(&next), Some(1)) => i64::from(next),
                    _ => IGNORE,
                });
            }
        }
        row.len = row.tokens.len();
        let pad = n - row.tokens.len();
        row.tokens.extend(std::iter::repeat_n(0, pad));
        row.targets.extend(std::iter::repeat_n(IGNORE, pad));
        row.positions.extend(0..pad as i64);
        row.segments.extend(std::iter::repeat_n(members.len() as i64, pad));
        row
    }
}

/// Packs `examples` into rows of `seq_len` tokens (or one per row).
pub fn pack(examples: Vec<Example>, seq_len: usize, overlong: Overlong, packed: bool) -> Rows {
    let mut stats = PackStats { examples: examples.len() as u64, ..PackStats::default() };
    let mut kept = Vec::with_capacity(examples.len());
    for mut ex in examples {
        if ex.tokens.len() > seq_len {
            if overlong == Overlong::Drop {
                stats.dropped_overlong += 1;
                continue;
            }
            ex.tokens.truncate(seq_len);
            ex.mask.truncate(seq_len);
            stats.truncated += 1;
        }
        let trained = ex.trained();
        if trained == 0 {
            stats.dropped_untrained += 1;
            continue;
        }
        stats.trained_tokens += trained as u64;
        stats.tokens += ex.tokens.len() as u64;
        kept.push(ex);
    }
    let rows = if packed { best_fit_decreasing(&kept, seq_len) } else { (0..kept.len()).map(|i| vec![i]).collect() };
    stats.rows = rows.len() as u64;
    stats.padding_tokens = stats.rows * seq_len as u64 - stats.tokens;
    stats.padding_share =
        if stats.rows > 0 { stats.padding_tokens as f64 / (stats.rows * seq_len as u64) as f64 } else { 0.0 };
    Rows { examples: kept, rows, seq_len, stats, pairs: None }
}

/// Preference pairs (examples `2i`, `2i + 1`: chosen, rejected), one
/// completion per row. A pair too long for `seq_len` is truncated or
/// dropped whole, as is one left with nothing to train on.
pub fn pair_rows(examples: Vec<Example>, seq_len: usize, overlong: Overlong, config: crate::dpo::DpoConfig) -> Rows {
    let mut stats = PackStats { examples: examples.len() as u64 / 2, ..PackStats::default() };
    let mut kept = Vec::with_capacity(examples.len());
    let mut it = examples.into_iter();
    while let (Some(chosen), Some(rejected)) = (it.next(), it.next()) {
        let mut pair = [chosen, rejected];
        if pair.iter().any(|e| e.tokens.len() > seq_len) {
            if overlong == Overlong::Drop {
                stats.dropped_overlong += 1;
                continue;
            }
            for e in &mut pair {
                e.tokens.truncate(seq_len);
                e.mask.truncate(seq_len);
            }
            stats.truncated += 1;
        }
        if pair.iter().any(|e| e.trained() == 0) {
            stats.dropped_untrained += 1;
            continue;
        }
        for e in pair {
            stats.trained_tokens += e.trained() as u64;
            stats.tokens += e.tokens.len() as u64;
            kept.push(e);
        }
    }
    let rows: Vec<Vec<usize>> = (0..kept.len()).map(|i| vec![i]).collect();
    stats.rows = rows.len() as u64;
    stats.padding_tokens = stats.rows * seq_len as u64 - stats.tokens;
    stats.padding_share =
        if stats.rows > 0 { stats.padding_tokens as f64 / (stats.rows * seq_len as u64) as f64 } else { 0.0 };
    Rows { examples: kept, rows, seq_len, stats, pairs: Some(Pairs { config, reference: None }) }
}

/// Longest first, each into the row with the least room that still holds
/// it (a new row when none does).
fn best_fit_decreasing(examples: &[Example], capacity: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(examples[i].tokens.len()), i));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    // Room left → the rows with that much room, oldest first.
    let mut by_room: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in order {
        let len = examples[i].tokens.len();
        let fit = by_room.range(len..).next().map(|(&room, _)| room);
        let (row, room) = match fit {
            Some(room) => {
                let list = by_room.get_mut(&room).expect("found above");
                let row = list.remove(0);
                if list.is_empty() {
                    by_room.remove(&room);
                }
                (row, room)
            }
            None => {
                rows.push(Vec::new());
                (rows.len() - 1, capacity)
            }
        };
        rows[row].push(i);
        let left = room - len;
        if left > 0 {
            let list = by_room.entry(left).or_default();
            let at = list.partition_point(|&r| r < row);
            list.insert(at, row);
        }
    }
    rows
}

/// Every example of a split, from Parquet (`tokens`, `loss_mask`) or
/// Megatron (`.bin`/`.idx` and `.mask.bin`), checked against the manifest
/// and the vocabulary.
pub fn read_examples(
    dir: &Path,
    manifest: &Manifest,
    split: Split,
    format: ShardFormat,
    vocab_size: u64,
) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    for shard in manifest.shards(split) {
        let prefix = dir.join(&shard.name);
        let (path, mut found) = match format {
            ShardFormat::Parquet => {
                let path = prefix.with_extension("parquet");
                (path.clone(), read_parquet_examples(&path)?)
            }
            ShardFormat::Megatron => {
                let reader = megatron::Reader::open(&prefix)?;
                let bin = prefix.with_extension("bin");
                let docs: Vec<Vec<u32>> = (0..reader.len()).map(|i| reader.get(i)).collect::<Result<_, _>>()?;
                let total: u64 = docs.iter().map(|d| d.len() as u64).sum();
                let mask_path = loss_mask::path_beside(&bin);
                let mask = loss_mask::read(&mask_path, total).map_err(|e| shard_error(&mask_path, e))?;
                let mut at = 0;
                let examples = docs
                    .into_iter()
                    .map(|tokens| {
                        let m = mask[at..at + tokens.len()].to_vec();
                        at += tokens.len();
                        Example { tokens, mask: m }
                    })
                    .collect();
                (bin, examples)
            }
        };
        let tokens: u64 = found.iter().map(|e| e.tokens.len() as u64).sum();
        if tokens != shard.tokens || found.len() as u64 != shard.docs {
            return Err(shard_error(
                &path,
                format!(
                    "{} examples of {tokens} tokens, but manifest.json says {} of {}",
                    found.len(),
                    shard.docs,
                    shard.tokens
                ),
            ));
        }
        for (i, e) in found.iter().enumerate() {
            if let Some(&id) = e.tokens.iter().find(|&&t| u64::from(t) >= vocab_size) {
                return Err(shard_error(
                    &path,
                    format!("example {i} has token id {id}, not below the model's vocab_size {vocab_size}"),
                ));
            }
        }
        examples.append(&mut found);
    }
    Ok(examples)
}

fn shard_error(path: &Path, message: impl ToString) -> DataError {
    DataError::Shard { path: path.display().to_string(), message: message.to_string() }
}

fn read_parquet_examples(path: &Path) -> Result<Vec<Example>, DataError> {
    let file = File::open(path).map_err(|e| shard_error(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| shard_error(path, e))?;
    let root = builder.parquet_schema().root_schema().get_fields();
    let column = |name: &str| {
        root.iter().position(|f| f.name() == name).ok_or_else(|| shard_error(path, format!("no `{name}` column")))
    };
    let (tokens_at, mask_at) = (column(parquet_columns::TOKENS)?, column(parquet_columns::LOSS_MASK)?);
    let projection = ProjectionMask::roots(builder.parquet_schema(), [tokens_at, mask_at]);
    let reader = builder.with_projection(projection).build().map_err(|e| shard_error(path, e))?;
    let mut examples = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| shard_error(path, e))?;
        let (Some(tokens), Some(masks)) = (
            batch.column_by_name(parquet_columns::TOKENS).and_then(|c| c.as_list_opt::<i32>()),
            batch.column_by_name(parquet_columns::LOSS_MASK).and_then(|c| c.as_list_opt::<i32>()),
        ) else {
            return Err(shard_error(path, "`tokens` and `loss_mask` must be lists"));
        };
        for i in 0..batch.num_rows() {
            let t = tokens.value(i);
            let t: Vec<u32> = if let Some(v) = t.as_primitive_opt::<UInt16Type>() {
                v.values().iter().map(|&x| u32::from(x)).collect()
            } else if let Some(v) = t.as_primitive_opt::<UInt32Type>() {
                v.values().to_vec()
            } else {
                return Err(shard_error(path, format!("token ids are {}, not uint16 or uint32", t.data_type())));
            };
            let m = masks.value(i);
            let Some(m) = m.as_primitive_opt::<UInt8Type>() else {
                return Err(shard_error(path, format!("`loss_mask` holds {}, not uint8", m.data_type())));
            };
            let m = m.values().to_vec();
            if m.len() != t.len() || m.iter().any(|&b| b > 1) {
                return Err(shard_error(path, format!("row {i}: the loss mask is not one 0 or 1 per token")));
            }
            examples.push(Example { tokens: t, mask: m });
        }
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(len: usize, first_trained: usize) -> Example {
        Example { tokens: (1..=len as u32).collect(), mask: (0..len).map(|i| (i >= first_trained) as u8).collect() }
    }

    #[test]
    fn best_fit_decreasing_fills_the_fullest_row_that_fits() {
        let examples: Vec<Example> = [5, 3, 7, 2, 4, 1].iter().map(|&n| ex(n, 0)).collect();
        let rows = best_fit_decreasing(&examples, 8);
        // 7 opens row 0, 5 row 1, 4 row 2; 3 fits row 1 best (room 3), 2 row 2 (room 4 → 2), 1 row 0.
        assert_eq!(rows, vec![vec![2, 5], vec![0, 1], vec![4, 3]]);
    }

    #[test]
    fn rows_restart_positions_and_train_only_on_masked_next_tokens() {
        let rows = pack(vec![ex(4, 2), ex(3, 1), ex(12, 0), ex(2, 2)], 8, Overlong::Truncate, true);
        assert_eq!(rows.stats.truncated, 1);
        assert_eq!(rows.stats.dropped_untrained, 1, "the example whose mask is all zeros");
        assert_eq!(rows.count(), 2);
        let second = rows.row(1);
        assert_eq!(second.tokens, [1, 2, 3, 4, 1, 2, 3, 0]);
        assert_eq!(second.positions, [0, 1, 2, 3, 0, 1, 2, 0]);
        assert_eq!(second.segments, [0, 0, 0, 0, 1, 1, 1, 2]);
        // Example 0 trains on tokens 2.. (targets 3 and 4); example 1 on tokens 1.. (2 and 3).
        assert_eq!(second.targets, [IGNORE, 3, 4, IGNORE, 2, 3, IGNORE, IGNORE]);
        assert_eq!(rows.stats.padding_tokens, 1);
        let dropped = pack(vec![ex(4, 2), ex(12, 0)], 8, Overlong::Drop, false);
        assert_eq!((dropped.stats.dropped_overlong, dropped.count()), (1, 1));
        assert_eq!(dropped.stats.padding_share, 0.5);
    }
}
