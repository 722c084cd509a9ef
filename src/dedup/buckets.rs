//! The bucket stage: within each band, documents whose hashes are all equal
//! fall in one bucket; each bucket becomes edges between consecutive
//! members, for the cluster stage to join.
//!
//! ```text
//! WORK/buckets/band-003.edges   band 3's edges: u32 unit, u32 doc, u32 unit, u32 doc, sorted
//! ```
//!
//! Tasks share the parts of bands (a whole band, or with `ranges` one range
//! of its hashes: [`Part`]). A part reads every unit's signature file of its
//! band, each verified (another format, other parameters, truncation,
//! damage, disorder are errors that name the file), keeps the records of
//! its range, merges the sorted files as one stream in hash order and
//! writes its edges file in the [`frame`] envelope (magic `CURATEED`). A
//! part whose edges file already verifies is skipped. Memory: one part's
//! records at a time (rows × 8 + 8 bytes per document with a signature) and
//! its edges.
//!
//! With an index (incremental dedup), each band also reads the index's
//! signature files of that band, whose units are renumbered from
//! [`INDEX_UNIT`] on.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{read_file, DedupError, Fault};
use super::frame;
use super::minhash::Method;
use super::sigfile::{self, Record, Records};
use super::signatures::{band_path, missing_units, StageParams, INDEX_UNIT};
use crate::io::atomic;
use crate::io::doc::Place;
use crate::runtime::progress::{Progress, ProgressMode};
use crate::runtime::task::Task;

const MAGIC: &[u8; 8] = b"CURATEED";
const EDGE_BYTES: usize = 16;

/// Two documents, the first earlier in input order.
pub type Edge = (Place, Place);

/// One task's share of the bucket stage: the records of one band whose
/// first hash, mixed, falls in one of `ranges` equal ranges of 64 bits.
/// Equal hashes share a range, so a range's buckets are whole. The mixing
/// matters: MinHash values lie below 2⁶¹ and SimHash keys are masked bits,
/// so their raw values would crowd into a few ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub band: usize,
    pub range: usize,
    pub ranges: usize,
}

impl Part {
    /// Every part of a run with `bands` bands cut into `ranges` ranges, band by band.
    pub fn all(bands: usize, ranges: usize) -> impl Iterator<Item = Part> {
        (0..bands * ranges).map(move |i| Part { band: i / ranges, range: i % ranges, ranges })
    }

    pub fn holds(&self, hash: u64) -> bool {
        // splitmix64's finaliser: every input bit moves every output bit.
        let mut x = hash;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        ((u128::from(x) * self.ranges as u128) >> 64) as usize == self.range
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    params: StageParams,
    part: Part,
    edges: u64,
    record_bytes: usize,
    sorted_by: String,
    /// The signatures the part was made from, for the stage's stats when a
    /// rerun finds the file done (files of before it say 0).
    #[serde(default)]
    records: u64,
}

const KIND: &str = "bucket edges";

fn header(params: &StageParams, part: Part, edges: usize, records: u64) -> Header {
    Header {
        kind: KIND.into(),
        params: params.clone(),
        part,
        edges: edges as u64,
        record_bytes: EDGE_BYTES,
        sorted_by: "first document, second document".into(),
        records,
    }
}

pub fn edges_path(work: &Path, part: Part) -> PathBuf {
    let name = match part.ranges {
        1 => format!("band-{:03}.edges", part.band),
        n => format!("band-{:03}.range-{:03}-of-{n:03}.edges", part.band, part.range),
    };
    work.join("buckets").join(name)
}

fn ranges_path(work: &Path) -> PathBuf {
    work.join("buckets").join("ranges.json")
}

/// How many ranges the bucket stage cut each band into.
pub fn ranges(work: &Path) -> Result<usize, DedupError> {
    let path = ranges_path(work);
    if !path.is_file() {
        return Err(DedupError::NotReady { path, hint: "run `curate dedup buckets` first" });
    }
    read_file(&path, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        text.trim().parse().map_err(|_| Fault::Malformed(format!("not a number of ranges: {text:?}")))
    })
}

/// Records the number of ranges in `buckets/ranges.json`, or checks that
/// an earlier run of the stage here used the same: parts of bands cut
/// differently do not add up.
fn claim_ranges(work: &Path, ranges: usize, task: Task) -> Result<(), DedupError> {
    let path = ranges_path(work);
    atomic::create_dir(path.parent().expect("a folder"))?;
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == ranges.to_string() => Ok(()),
        Ok(found) => Err(DedupError::Ranges { path, found: found.trim().to_owned(), wanted: ranges }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(atomic::write_shared(&path, ranges.to_string().as_bytes(), &task.name())?)
        }
        Err(source) => Err(DedupError::Read { path, source }),
    }
}

/// Edges between consecutive documents of each run of equal hashes in
/// sorted records (datatrove's bucket stage pairs them the same way), but
/// none between two documents of an index: an index's own duplicates are
/// not this run's business, and a run's index documents sort last.
///
/// SimHash's records are (table key, fingerprint): within a run of equal
/// keys, equal fingerprints are chained as above, and the first holders of
/// each two distinct fingerprints within `max_distance` bits are joined.
pub fn bucket_edges<'a>(sorted: impl Iterator<Item = Record<'a>>, simhash_distance: Option<u32>) -> Vec<Edge> {
    let edge = |a: &Record, b: &Record| (a.place.min(b.place), a.place.max(b.place));
    let mut edges = Vec::new();
    // SimHash: the first holder of each distinct fingerprint in the current run of equal keys.
    let mut run: Vec<Record> = Vec::new();
    let close_run = |run: &mut Vec<Record>, edges: &mut Vec<Edge>| {
        if let Some(max_distance) = simhash_distance {
            for (i, a) in run.iter().enumerate() {
                for b in &run[i + 1..] {
                    let both_index = a.place.unit >= INDEX_UNIT && b.place.unit >= INDEX_UNIT;
                    if !both_index && super::simhash::distance(a.hashes[1], b.hashes[1]) <= max_distance {
                        edges.push(edge(a, b));
                    }
                }
            }
        }
        run.clear();
    };
    let mut previous: Option<Record> = None;
    for r in sorted {
        if let Some(p) = previous {
            if p.hashes == r.hashes && p.place.unit < INDEX_UNIT {
                edges.push(edge(&p, &r));
            }
            if simhash_distance.is_some() && p.hashes[0] != r.hashes[0] {
                close_run(&mut run, &mut edges);
            }
        }
        if simhash_distance.is_some() && previous.is_none_or(|p| p.hashes != r.hashes) {
            run.push(r);
        }
        previous = Some(r);
    }
    close_run(&mut run, &mut edges);
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// The records of files each sorted, as one sorted stream (a k-way merge):
/// the bucket stage never holds a second, merged copy of a band.
pub fn merged(files: &[Records]) -> impl Iterator<Item = Record<'_>> {
    let mut heap: BinaryHeap<Reverse<(Record<'_>, usize, usize)>> =
        files.iter().enumerate().filter(|(_, f)| !f.is_empty()).map(|(i, f)| Reverse((f.get(0), i, 0))).collect();
    std::iter::from_fn(move || {
        let Reverse((record, file, at)) = heap.pop()?;
        if at + 1 < files[file].len() {
            heap.push(Reverse((files[file].get(at + 1), file, at + 1)));
        }
        Some(record)
    })
}

/// The edges file of `part`, made from `records` signatures.
pub fn encode(params: &StageParams, part: Part, edges: &[Edge], records: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(edges.len() * EDGE_BYTES);
    for (a, b) in edges {
        for v in [a.unit, a.index, b.unit, b.index] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    frame::wrap(MAGIC, &header(params, part, edges.len(), records), &body)
}

/// Reads and verifies the edges of `part`, written with `params`.
pub fn read(path: &Path, params: &StageParams, part: Part) -> Result<Vec<Edge>, DedupError> {
    read_counted(path, params, part).map(|(edges, _)| edges)
}

/// [`read`], with the number of signatures the part was made from.
pub fn read_counted(path: &Path, params: &StageParams, part: Part) -> Result<(Vec<Edge>, u64), DedupError> {
    read_file(path, |bytes| decode(bytes, params, part))
}

fn decode(bytes: &[u8], params: &StageParams, part: Part) -> Result<(Vec<Edge>, u64), Fault> {
    let (found, body) = frame::unwrap::<Header>(bytes, MAGIC, "edges", |h| h.edges as usize * h.record_bytes)?;
    if found != header(params, part, found.edges as usize, found.records) {
        return Err(Fault::Mismatch(format!(
            "for {:?} with {:?}; this run needs {part:?} with {:?}",
            found.part, found.params, params
        )));
    }
    let u32_at = |c: &[u8], i: usize| u32::from_le_bytes(c[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let place = |c: &[u8], i: usize| Place { unit: u32_at(c, i), index: u32_at(c, i + 1) };
    let edges: Vec<Edge> = body.chunks_exact(EDGE_BYTES).map(|c| (place(c, 0), place(c, 2))).collect();
    if edges.windows(2).any(|w| w[0] > w[1]) {
        return Err(Fault::Disorder("edges out of order".into()));
    }
    Ok((edges, found.records))
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Parts of bands (all of each band without --ranges) done, now or before.
    pub parts: u64,
    pub records: u64,
    pub edges: u64,
}

/// Builds the edges of this task's parts: each band cut into `ranges`
/// ranges, parts shared between tasks as units are. Memory: one part's
/// records, a 1/`ranges` share of a band's.
pub fn run(work: &Path, task: Task, ranges: usize, progress: ProgressMode) -> Result<BucketStats, DedupError> {
    let params = StageParams::load(work)?;
    let missing = missing_units(work, params.units);
    if let Some(&first) = missing.first() {
        let (missing, units) = (missing.len(), params.units);
        return Err(DedupError::Incomplete { work: work.to_owned(), stage: "signatures", missing, units, first });
    }
    let config = params.config();
    claim_ranges(work, ranges, task)?;
    let mut stats = BucketStats::default();
    let mine: Vec<Part> =
        Part::all(config.bands, ranges).enumerate().filter(|&(i, _)| task.owns(i)).map(|(_, p)| p).collect();
    let mut sources: Vec<(&Path, usize, u32)> = (0..params.units).map(|u| (work, u, 0)).collect();
    if let Some(index) = &params.index {
        sources.extend((0..index.units).map(|u| (index.work.as_path(), u, INDEX_UNIT)));
    }
    // Progress in signature bytes read, every part reading its band's files.
    let file_size = |band: usize, (folder, unit, _): &(&Path, usize, u32)| {
        std::fs::metadata(band_path(folder, band, *unit)).map_or(0, |m| m.len())
    };
    let total = mine.iter().map(|p| sources.iter().map(|s| file_size(p.band, s)).sum::<u64>()).sum();
    let bar = Progress::start(total, progress);
    for part in mine {
        let band = part.band;
        let path = edges_path(work, part);
        if let Ok((edges, records)) = read_counted(&path, &params, part) {
            stats.parts += 1;
            stats.records += records;
            stats.edges += edges.len() as u64;
            bar.add(sources.iter().map(|s| file_size(band, s)).sum(), 0);
            continue;
        }
        let files: Vec<Result<Records, DedupError>> = sources
            .par_iter()
            .map(|source| {
                let &(folder, unit, base) = source;
                let mut records =
                    sigfile::read_where(&band_path(folder, band, unit), &config, band, unit as u32, |h| part.holds(h))?;
                bar.add(file_size(band, source), records.len() as u64);
                records.offset_units(base);
                Ok(records)
            })
            .collect();
        let files: Vec<Records> = files.into_iter().collect::<Result<_, _>>()?;
        let records: usize = files.iter().map(Records::len).sum();
        let simhash_distance = (params.method == Method::Simhash).then_some(params.max_distance);
        let edges = bucket_edges(merged(&files), simhash_distance);
        drop(files);
        atomic::write(&path, &encode(&params, part, &edges, records as u64))?;
        stats.parts += 1;
        stats.records += records as u64;
        stats.edges += edges.len() as u64;
    }
    bar.finish();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::minhash::MinHashConfig;

    fn records(list: &[(&[u64], u32, u32)]) -> Records {
        let mut records = Records::new(list[0].0.len());
        for &(hashes, unit, index) in list {
            records.push(hashes, Place { unit, index });
        }
        records.sort();
        records
    }

    /// An edge written as ((unit, index), (unit, index)).
    type Pairs = ((u32, u32), (u32, u32));

    fn edges(list: &[Pairs]) -> Vec<Edge> {
        let place = |(unit, index): (u32, u32)| Place { unit, index };
        list.iter().map(|&(a, b)| (place(a), place(b))).collect()
    }

    #[test]
    fn runs_of_equal_hashes_become_chains() {
        let records = records(&[
            (&[1, 2], 0, 5),
            (&[1, 2], 1, 0),
            (&[1, 2], 0, 9),
            (&[1, 3], 0, 1),
            (&[7, 7], 2, 2),
            (&[7, 7], 0, 0),
        ]);
        assert_eq!(bucket_edges(records.iter(), None), edges(&[((0, 0), (2, 2)), ((0, 5), (0, 9)), ((0, 9), (1, 0))]));
    }

    #[test]
    fn sorted_files_merge_into_one_sorted_stream() {
        let a = records(&[(&[1, 9], 0, 3), (&[4, 0], 0, 1), (&[7, 7], 0, 0)]);
        let b = records(&[(&[1, 9], 1, 0), (&[5, 5], 1, 2)]);
        let empty = Records::new(2);
        let c = records(&[(&[0, 0], 2, 5), (&[9, 9], 2, 1)]);
        let files = [a, empty, b, c];
        let got: Vec<(Vec<u64>, u32, u32)> =
            merged(&files).map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect();
        let mut expected: Vec<(Vec<u64>, u32, u32)> = files
            .iter()
            .flat_map(|f| f.iter().map(|r| (r.hashes.to_vec(), r.place.unit, r.place.index)).collect::<Vec<_>>())
            .collect();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(bucket_edges(merged(&files), None), edges(&[((0, 3), (1, 0))]));
    }

    #[test]
    fn ranges_split_the_hashes_evenly_and_whole() {
        let parts: Vec<Part> = Part::all(2, 4).collect();
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[5], Part { band: 1, range: 1, ranges: 4 });
        // Each hash in exactly one range, and MinHash-like values (below 2⁶¹) spread evenly.
        let mut counts = [0usize; 4];
        for i in 0..40_000u64 {
            let hash = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 3;
            let owners: Vec<usize> = (0..4).filter(|&r| parts[r].holds(hash)).collect();
            assert_eq!(owners.len(), 1, "{hash}");
            counts[owners[0]] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        // SimHash keys: a few masked bits.
        let keys: std::collections::BTreeSet<usize> =
            (0..64u64).map(|k| (0..4).find(|&r| parts[r].holds(k << 32)).unwrap()).collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn simhash_buckets_join_fingerprints_within_the_distance() {
        let records = records(&[
            (&[0xff00, 0xff00_0000_0000_0001], 0, 0),
            (&[0xff00, 0xff00_0000_0000_0001], 0, 4),
            (&[0xff00, 0xff00_0000_0000_0007], 1, 1),
            (&[0xff00, 0xff00_0000_0000_00ff], 1, 2),
            (&[0xff00, 0xff00_0000_0000_000f], INDEX_UNIT, 3),
            (&[0xff00, 0xff00_0000_0000_000f], INDEX_UNIT, 9),
            (&[0x0f00, 0x0f00_0000_0000_0001], 2, 0),
        ]);
        // Distances: 1 vs 7 is 2 bits, 1 vs 0xf 3, 7 vs 0xf 1, 0xff is 4+ from all.
        assert_eq!(
            bucket_edges(records.iter(), Some(3)),
            edges(&[((0, 0), (0, 4)), ((0, 0), (1, 1)), ((0, 0), (INDEX_UNIT, 3)), ((1, 1), (INDEX_UNIT, 3))])
        );
    }

    #[test]
    fn edges_round_trip_and_damage_is_named() {
        let params = StageParams::new(&MinHashConfig::default(), 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.edges");
        let edges = edges(&[((0, 1), (0, 2)), ((0, 2), (2, 7))]);
        let part = Part { band: 4, range: 1, ranges: 3 };
        std::fs::write(&path, encode(&params, part, &edges, 7)).unwrap();
        assert_eq!(read_counted(&path, &params, part).unwrap(), (edges, 7));
        let err = read(&path, &params, Part { band: 5, ..part }).unwrap_err().to_string();
        assert!(err.contains("written for Part { band: 4, range: 1, ranges: 3 }"), "{err}");
        assert!(read(&path, &params, Part { range: 2, ..part }).is_err());
        let other = StageParams { seed: 2, ..params.clone() };
        assert!(read(&path, &other, part).unwrap_err().to_string().contains("seed: 1"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = read(&path, &params, part).unwrap_err().to_string();
        assert!(err.contains("e.edges") && err.contains("truncated"), "{err}");
    }
}
