//! Signature files: one band of the MinHash signatures of one unit of
//! input, sorted, the intermediate that the bucket stage merges.
//!
//! Self-describing, because a silently wrong intermediate is the classic
//! MinHash failure ("hash order error", clusters from mismatched
//! parameters): the file says what it holds and proves it is whole.
//!
//! In the [`frame`] envelope (magic `CURATESG`): a JSON header with the
//! parameters, band, unit, record count and size and sort order; records of
//! `rows` u64 hashes, u32 unit, u32 document (its place in the unit), little
//! endian.
//!
//! [`read`] checks all of it and names the file and the fault: another
//! format, a newer version, other parameters, a truncated or damaged file,
//! records out of order.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{read_file, DedupError, Fault};
use super::frame;
use super::minhash::MinHashConfig;
use crate::io::doc::Place;
use crate::runtime::options::Named;

const MAGIC: &[u8; 8] = b"CURATESG";

/// One document's hashes in one band, borrowed from [`Records`]. Ordered
/// by hashes, then place: the files' sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record<'a> {
    pub hashes: &'a [u64],
    pub place: Place,
}

/// Records of one band, flat: each is `rows` hashes and one word holding
/// `unit << 32 | doc`, so that comparing the words compares records. A
/// record costs `8 × (rows + 1)` bytes (72 with 8 rows) instead of a
/// vector's header and allocation besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records {
    rows: usize,
    words: Vec<u64>,
}

impl Records {
    pub fn new(rows: usize) -> Records {
        Records { rows, words: Vec::new() }
    }

    pub fn push(&mut self, hashes: &[u64], place: Place) {
        debug_assert_eq!(hashes.len(), self.rows);
        self.words.extend_from_slice(hashes);
        self.words.push(u64::from(place.unit) << 32 | u64::from(place.index));
    }

    pub fn len(&self) -> usize {
        self.words.len() / (self.rows + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn get(&self, i: usize) -> Record<'_> {
        let w = &self.words[i * (self.rows + 1)..(i + 1) * (self.rows + 1)];
        let place = w[self.rows];
        Record { hashes: &w[..self.rows], place: Place { unit: (place >> 32) as u32, index: place as u32 } }
    }

    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Adds `base` to every record's unit (an index's units are renumbered).
    pub fn offset_units(&mut self, base: u32) {
        for place in self.words.iter_mut().skip(self.rows).step_by(self.rows + 1) {
            *place += u64::from(base) << 32;
        }
    }

    /// Sorts the records in place, in parallel: as fixed-size arrays for the
    /// usual row counts, through a sorted index otherwise.
    pub fn sort(&mut self) {
        use rayon::slice::ParallelSliceMut;
        macro_rules! sort_as_arrays {
            ($($n:literal)*) => {
                match self.rows + 1 {
                    $($n => return self.words.as_chunks_mut::<$n>().0.par_sort_unstable(),)*
                    _ => {}
                }
            };
        }
        sort_as_arrays!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17);
        let stride = self.rows + 1;
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.par_sort_unstable_by(|&a, &b| {
            self.words[a * stride..(a + 1) * stride].cmp(&self.words[b * stride..(b + 1) * stride])
        });
        self.words = order.iter().flat_map(|&i| self.words[i * stride..(i + 1) * stride].iter().copied()).collect();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    method: super::minhash::Method,
    #[serde(default)]
    norm: super::normalize::TextNorm,
    #[serde(default)]
    shingles: super::minhash::Shingles,
    n_grams: usize,
    bands: usize,
    rows: usize,
    seed: u32,
    #[serde(default)]
    max_distance: u32,
    #[serde(default)]
    blocks: u32,
    band: usize,
    unit: u32,
    records: u64,
    record_bytes: usize,
    sorted_by: String,
}

const KIND: &str = "dedup signatures";
const SORTED_BY: &str = "hashes, unit, doc";

fn header(config: &MinHashConfig, band: usize, unit: u32, records: usize) -> Header {
    Header {
        kind: KIND.into(),
        method: config.method,
        norm: config.norm,
        shingles: config.shingles,
        n_grams: config.n_grams,
        bands: config.bands,
        rows: config.rows,
        seed: config.seed,
        max_distance: config.max_distance,
        blocks: config.blocks,
        band,
        unit,
        records: records as u64,
        record_bytes: config.rows * 8 + 8,
        sorted_by: SORTED_BY.into(),
    }
}

/// The file's bytes for `records` (sorted here).
pub fn encode(config: &MinHashConfig, band: usize, unit: u32, mut records: Records) -> Vec<u8> {
    records.sort();
    let mut body = Vec::with_capacity(records.len() * (config.rows * 8 + 8));
    for r in records.iter() {
        debug_assert_eq!(r.hashes.len(), config.rows);
        for h in r.hashes {
            body.extend_from_slice(&h.to_le_bytes());
        }
        body.extend_from_slice(&r.place.unit.to_le_bytes());
        body.extend_from_slice(&r.place.index.to_le_bytes());
    }
    frame::wrap(MAGIC, &header(config, band, unit, records.len()), &body)
}

/// Reads and verifies the file of `band` and `unit` written with `config`.
pub fn read(path: &Path, config: &MinHashConfig, band: usize, unit: u32) -> Result<Records, DedupError> {
    read_where(path, config, band, unit, |_| true)
}

/// [`read`], keeping only the records whose first hash passes `keep` (the
/// whole file is still verified), so that a part of a band costs only its
/// own records' memory.
pub fn read_where(
    path: &Path,
    config: &MinHashConfig,
    band: usize,
    unit: u32,
    keep: impl Fn(u64) -> bool,
) -> Result<Records, DedupError> {
    read_file(path, |bytes| decode(bytes, config, band, unit, keep))
}

fn decode(
    bytes: &[u8],
    config: &MinHashConfig,
    band: usize,
    unit: u32,
    keep: impl Fn(u64) -> bool,
) -> Result<Records, Fault> {
    let (found, body) = frame::unwrap::<Header>(bytes, MAGIC, "signature", |h| h.records as usize * h.record_bytes)?;
    let expected = header(config, band, unit, found.records as usize);
    if found != expected {
        return Err(Fault::Mismatch(format!(
            "for {} {} ({:?}, {:?} n_grams {}, {} bands × {} rows, seed {}, band {}, unit {}); this run needs \
             {}, {:?}, {:?} n_grams {}, {} bands × {} rows, seed {}, band {}, unit {}",
            found.method.name(),
            found.kind,
            found.norm,
            found.shingles,
            found.n_grams,
            found.bands,
            found.rows,
            found.seed,
            found.band,
            found.unit,
            expected.method.name(),
            expected.norm,
            expected.shingles,
            expected.n_grams,
            expected.bands,
            expected.rows,
            expected.seed,
            expected.band,
            expected.unit
        )));
    }
    let rows = config.rows;
    let mut records = Records::new(rows);
    // Each record as (hashes, unit, doc) numbers, compared with the one before.
    let (mut previous, mut current) = (Vec::with_capacity(rows + 2), Vec::with_capacity(rows + 2));
    for (i, chunk) in body.chunks_exact(found.record_bytes).enumerate() {
        current.clear();
        current.extend(chunk[..rows * 8].chunks_exact(8).map(|h| u64::from_le_bytes(h.try_into().expect("8"))));
        let unit = u32::from_le_bytes(chunk[rows * 8..rows * 8 + 4].try_into().expect("4"));
        let doc = u32::from_le_bytes(chunk[rows * 8 + 4..].try_into().expect("4"));
        current.extend([u64::from(unit), u64::from(doc)]);
        if i > 0 && previous > current {
            return Err(Fault::Disorder(format!("record {i} is out of order (by {SORTED_BY})")));
        }
        if keep(current[0]) {
            records.push(&current[..rows], Place { unit, index: doc });
        }
        std::mem::swap(&mut previous, &mut current);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    fn sample(config: &MinHashConfig) -> Records {
        let mut records = Records::new(config.rows);
        for i in 0..50u32 {
            let hashes: Vec<u64> = (0..config.rows as u64).map(|r| (u64::from(i) * 7919 + r * 104729) % 97).collect();
            records.push(&hashes, Place { unit: 3, index: i });
        }
        records
    }

    #[test]
    fn records_come_back_sorted() {
        let config = MinHashConfig::default();
        let bytes = encode(&config, 5, 3, sample(&config));
        let records = decode(&bytes, &config, 5, 3, |_| true).unwrap();
        let mut expected: Vec<(Vec<u64>, u32, u32)> =
            sample(&config).iter().map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect();
        expected.sort();
        let got: Vec<(Vec<u64>, u32, u32)> =
            records.iter().map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect();
        assert_eq!(got, expected);
        // Only the records whose first hash passes, the file still verified whole.
        let some = decode(&bytes, &config, 5, 3, |h| h % 2 == 0).unwrap();
        assert!(some.len() < records.len() && some.iter().all(|r| r.hashes[0] % 2 == 0));
    }

    #[test]
    fn every_row_count_sorts_as_records_compare() {
        for rows in [1, 2, 8, 16, 17, 40] {
            let mut records = Records::new(rows);
            let mut x = 1u64;
            for i in 0..300u32 {
                let hashes: Vec<u64> = (0..rows)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (x >> 60) % 3
                    })
                    .collect();
                records.push(&hashes, Place { unit: i % 4, index: i });
            }
            let mut expected: Vec<(Vec<u64>, u32, u32)> =
                records.iter().map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect();
            expected.sort();
            records.sort();
            let got: Vec<(Vec<u64>, u32, u32)> =
                records.iter().map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect();
            assert_eq!(got, expected, "rows {rows}");
        }
    }

    #[test]
    fn damage_of_every_kind_is_named() {
        let config = MinHashConfig::default();
        let good = encode(&config, 5, 3, sample(&config));
        let err = |bytes: &[u8], config: &MinHashConfig, band: usize| {
            decode(bytes, config, band, 3, |_| true).unwrap_err().to_string()
        };
        assert!(err(b"PAR1 something else", &config, 5).contains("not a curate signature file"));
        assert!(err(&good[..good.len() - 100], &config, 5).contains("truncated"), "{}", err(&good[..200], &config, 5));
        assert!(err(&good[..20], &config, 5).contains("truncated inside its header"));
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        assert!(err(&flipped, &config, 5).contains("checksum mismatch"));
        let other = MinHashConfig { seed: 2, ..config };
        assert!(err(&good, &other, 5).contains("seed 1"), "{}", err(&good, &other, 5));
        assert!(err(&good, &config, 6).contains("band 5"));
        let mut newer = good.clone();
        newer[8] = 2;
        assert!(err(&newer, &config, 5).contains("version 2"));
    }

    #[test]
    fn out_of_order_records_are_refused() {
        let config = MinHashConfig { rows: 1, bands: 1, ..MinHashConfig::default() };
        let mut two = Records::new(1);
        two.push(&[1], Place { unit: 0, index: 0 });
        two.push(&[2], Place { unit: 0, index: 1 });
        let mut bytes = encode(&config, 0, 0, two);
        // Swap the two records' hashes by hand, then fix the checksum.
        let start = bytes.len() - 8 - 32;
        bytes[start..start + 8].copy_from_slice(&2u64.to_le_bytes());
        bytes[start + 16..start + 24].copy_from_slice(&1u64.to_le_bytes());
        let n = bytes.len();
        let checksum = xxh3_64(&bytes[..n - 8]);
        bytes[n - 8..].copy_from_slice(&checksum.to_le_bytes());
        assert!(decode(&bytes, &config, 0, 0, |_| true).unwrap_err().to_string().contains("out of order"));
    }
}
