//! Line-level dedup across a corpus, as CCNet does it: count every line
//! (after datatrove's normalisation) over the whole corpus, then remove from
//! each document the lines seen more often than a threshold. Good against
//! boilerplate: menus, cookie notices, footers.
//!
//! This file is the counting stage, `curate dedup lines`:
//!
//! ```text
//! WORK/lines/run.json                 the input's fingerprint
//! WORK/lines/unit-000012.counts       unit 12's lines: u64 xxh3 of the normalised line, u32 count; sorted
//! WORK/lines/units/unit-000012.json   unit 12's stats: its completion marker
//! WORK/lines/stats/rank-00000-of-00001.json  a task's stats
//! ```
//!
//! Tasks share the units (`--rank`, `--world-size`) as `curate run` does,
//! through the stage driver ([`crate::stage`]): a unit's counts file is
//! published, then its marker; a rerun skips units whose files verify.
//! The `line_dedup` step ([`super::line_step`]) merges them all in hash
//! order ([`frequent_lines`]). Lines that normalise to nothing (blank,
//! punctuation only) are never counted. Memory: one unit's distinct lines
//! (about 24 bytes each) while counting; the frequent lines and a buffer
//! per file while merging.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

use super::error::{read_file, DedupError, Fault};
use super::frame;
use super::normalize::simplify_text;
use crate::io::atomic;
use crate::io::doc::FieldNames;
use crate::io::docs::UnitBatches;
use crate::io::plan::{self, Ignored, Plan, Unit};
use crate::io::read::ReadOptions;
use crate::runtime::pool;
use crate::runtime::progress::{ProgressMode, UnitProgress};
use crate::runtime::tally::ErrorTally;
use crate::runtime::task::Task;
use crate::stage::{Stage, StageDir, StageError, StageStats, Unbalanced};

const MAGIC: &[u8; 8] = b"CURATELC";
const RECORD_BYTES: usize = 12;
const SPLIT_BYTES: u64 = 256 << 20;

/// The hash a line is counted under, or None for a line that normalises to nothing.
pub fn line_hash(line: &str) -> Option<u64> {
    let normalised = simplify_text(line);
    (!normalised.is_empty()).then(|| xxh3_64(normalised.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    unit: u32,
    lines: u64,
    record_bytes: usize,
    sorted_by: String,
}

fn header(unit: u32, lines: usize) -> Header {
    Header {
        kind: "line counts".into(),
        unit,
        lines: lines as u64,
        record_bytes: RECORD_BYTES,
        sorted_by: "hash".into(),
    }
}

pub fn counts_path(work: &Path, unit: usize) -> PathBuf {
    work.join("lines").join(format!("unit-{unit:06}.counts"))
}

/// The stage's bookkeeping: `WORK/lines/{run.json,units/}` and `WORK/lines/stats/`.
pub fn stage_dir(work: &Path) -> StageDir {
    StageDir::within(work.join("lines"))
}

pub fn encode(unit: u32, counts: &HashMap<u64, u32>) -> Vec<u8> {
    let mut sorted: Vec<(u64, u32)> = counts.iter().map(|(&h, &c)| (h, c)).collect();
    sorted.sort_unstable();
    let mut body = Vec::with_capacity(sorted.len() * RECORD_BYTES);
    for (hash, count) in &sorted {
        body.extend_from_slice(&hash.to_le_bytes());
        body.extend_from_slice(&count.to_le_bytes());
    }
    frame::wrap(MAGIC, &header(unit, sorted.len()), &body)
}

/// Reads and verifies unit `unit`'s counts, sorted by hash.
pub fn read(path: &Path, unit: u32) -> Result<Vec<(u64, u32)>, DedupError> {
    read_file(path, |bytes| decode(bytes, unit))
}

fn decode(bytes: &[u8], unit: u32) -> Result<Vec<(u64, u32)>, Fault> {
    let (found, body) = frame::unwrap::<Header>(bytes, MAGIC, "line counts", |h| h.lines as usize * h.record_bytes)?;
    if found != header(unit, found.lines as usize) {
        return Err(Fault::Mismatch(format!("for unit {}, read as unit {unit}", found.unit)));
    }
    let records: Vec<(u64, u32)> = body
        .chunks_exact(RECORD_BYTES)
        .map(|c| {
            (u64::from_le_bytes(c[..8].try_into().expect("8 bytes")), u32::from_le_bytes(c[8..].try_into().expect("4")))
        })
        .collect();
    if records.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Fault::Disorder("hashes out of order or repeated".into()));
    }
    Ok(records)
}

pub struct LineCountOptions {
    pub input: String,
    pub names: FieldNames,
    pub work: PathBuf,
    pub task: Task,
    pub threads: usize,
    pub batch_size: usize,
    pub progress: ProgressMode,
}

/// A unit's or a task's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineCountStats {
    pub units: u64,
    pub docs: u64,
    pub lines: u64,
    /// Distinct lines, summed over units.
    pub distinct_lines: u64,
    /// Why records could not become documents, with examples naming the file and line.
    #[serde(flatten)]
    pub errors: ErrorTally,
}

impl StageStats for LineCountStats {
    fn merge(&mut self, other: &LineCountStats) {
        self.units += other.units;
        self.docs += other.docs;
        self.lines += other.lines;
        self.distinct_lines += other.distinct_lines;
        self.errors.merge(&other.errors);
    }

    fn docs(&self) -> u64 {
        self.docs + self.errors.docs
    }

    fn check(&self) -> Result<(), Unbalanced> {
        self.errors.imbalance().map_or(Ok(()), |why| Err(Unbalanced(why)))
    }
}

/// What a task of the stage reports.
pub struct LineCountReport {
    pub stats: LineCountStats,
    /// Units done by an earlier run, whose files verified.
    pub done_before: usize,
    pub stats_path: PathBuf,
    /// What the input holds that was not read, and why.
    pub ignored: Vec<Ignored>,
}

#[derive(Serialize)]
struct Fingerprint<'a> {
    kind: &'a str,
    names: (&'a str, &'a str),
    plan: &'a Plan,
}

/// Counts the lines of this task's units.
pub fn run(options: &LineCountOptions) -> Result<LineCountReport, DedupError> {
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(StageError::from)?;
    let fingerprint = Fingerprint { kind: "line counts", names: (&options.names.text, &options.names.id), plan: &plan };
    let fingerprint = format!("{:032x}", xxh3_128(&serde_json::to_vec(&fingerprint).expect("serialisable")));
    let dir = stage_dir(&options.work);
    dir.create()?;
    let work = &options.work;
    let intact = |unit: usize| match read(&counts_path(work, unit), unit as u32) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("curate: {e}; counting unit {unit} again");
            false
        }
    };
    let stage = Stage::<LineCountStats>::claim(
        &dir,
        &plan,
        options.task,
        &fingerprint,
        "line counts of another input",
        intact,
    )?;
    let done_before = stage.done_before();
    let read =
        Arc::new(ReadOptions { names: options.names.clone(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let pool = pool::pool(options.threads).map_err(StageError::from)?;
    let stats =
        stage.run(LineCountStats::default(), &pool, options.threads, options.progress, |unit, progress, _| {
            count_unit(&plan, &read, work, unit, progress).map(Some)
        })?;
    Ok(LineCountReport { stats, done_before, stats_path: dir.task_path(options.task), ignored: plan.ignored })
}

/// Counts a unit's lines and publishes its counts file.
fn count_unit(
    plan: &Plan,
    read: &Arc<ReadOptions>,
    work: &Path,
    unit: &Unit,
    progress: &mut UnitProgress,
) -> Result<LineCountStats, DedupError> {
    let mut stats = LineCountStats { units: 1, ..Default::default() };
    let mut counts: HashMap<u64, u32> = HashMap::new();
    let mut batches = UnitBatches::new(plan, vec![unit.index], read.clone());
    while let Some((_, docs)) = batches.next_batch() {
        let hashes: Vec<Vec<u64>> = docs.par_iter().map(|d| d.text.lines().filter_map(line_hash).collect()).collect();
        for h in hashes.iter().flatten() {
            let c = counts.entry(*h).or_default();
            *c = c.saturating_add(1);
        }
        stats.docs += docs.len() as u64;
        stats.lines += hashes.iter().map(|h| h.len() as u64).sum::<u64>();
        progress.docs(docs.len() as u64);
        progress.read_to(batches.bytes_read());
    }
    stats.errors = batches.errors;
    stats.distinct_lines = counts.len() as u64;
    atomic::write(&counts_path(work, unit.index), &encode(unit.index as u32, &counts))?;
    Ok(stats)
}

/// One unit's counts file, read record by record after a first pass has
/// verified its checksum: the merge holds a small buffer per file, not the
/// file.
struct Cursor {
    reader: BufReader<File>,
    path: PathBuf,
    remaining: u64,
    last: Option<u64>,
}

impl Cursor {
    fn open(path: &Path, unit: u32) -> Result<Cursor, DedupError> {
        let io = DedupError::read;
        let damaged = DedupError::damaged;
        // Pass 1: the envelope and the checksum, streamed.
        let mut file = File::open(path).map_err(io(path))?;
        let size = file.metadata().map_err(io(path))?.len();
        let mut prefix = vec![0u8; 16];
        file.read_exact(&mut prefix).map_err(|_| {
            damaged(path)(Fault::NotThisKind { what: "line counts", magic: String::from_utf8_lossy(MAGIC).into() })
        })?;
        let head_end = frame::header_end(&prefix, MAGIC, "line counts").map_err(damaged(path))?;
        prefix.resize(head_end, 0);
        file.read_exact(&mut prefix[16..]).map_err(|_| damaged(path)(Fault::TruncatedHeader))?;
        let found: Header = frame::parse_header(&prefix).map_err(damaged(path))?;
        if found != header(unit, found.lines as usize) {
            return Err(damaged(path)(Fault::Mismatch(format!("for unit {}, read as unit {unit}", found.unit))));
        }
        let want = head_end as u64 + found.lines * RECORD_BYTES as u64 + 8;
        if size != want {
            return Err(damaged(path)(Fault::Length { found: size, announced: want }));
        }
        let mut hasher = Xxh3::new();
        hasher.update(&prefix);
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut left = found.lines * RECORD_BYTES as u64;
        while left > 0 {
            let buf = reader.fill_buf().map_err(io(path))?;
            if buf.is_empty() {
                return Err(damaged(path)(Fault::Truncated));
            }
            let take = buf.len().min(left as usize);
            hasher.update(&buf[..take]);
            reader.consume(take);
            left -= take as u64;
        }
        let mut stored = [0u8; 8];
        reader.read_exact(&mut stored).map_err(io(path))?;
        if hasher.digest() != u64::from_le_bytes(stored) {
            return Err(damaged(path)(Fault::Checksum));
        }
        // Pass 2 starts at the first record.
        let mut file = reader.into_inner();
        file.seek(SeekFrom::Start(head_end as u64)).map_err(io(path))?;
        Ok(Cursor {
            reader: BufReader::with_capacity(1 << 14, file),
            path: path.to_path_buf(),
            remaining: found.lines,
            last: None,
        })
    }

    fn next(&mut self) -> Result<Option<(u64, u32)>, DedupError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let mut record = [0u8; RECORD_BYTES];
        self.reader.read_exact(&mut record).map_err(DedupError::read(&self.path))?;
        self.remaining -= 1;
        let hash = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
        if self.last.is_some_and(|last| last >= hash) {
            return Err(DedupError::damaged(&self.path)(Fault::Disorder("hashes out of order or repeated".into())));
        }
        self.last = Some(hash);
        Ok(Some((hash, u32::from_le_bytes(record[8..].try_into().expect("4 bytes")))))
    }
}

/// Lifts the soft limit of open files towards `wanted` (as far as the hard
/// limit allows): the merge keeps one file per unit open, and the usual
/// soft limit of 1,024 is below a large corpus's unit count.
#[allow(unsafe_code)]
fn raise_open_files_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Checks that every unit `curate dedup lines` planned in `work` has its
/// counts (each task finished); returns the number of units.
pub fn complete_units(work: &Path) -> Result<usize, DedupError> {
    let dir = stage_dir(work);
    let Some(units) = dir.units() else {
        return Err(DedupError::NotReady { path: work.join("lines/run.json"), hint: "run `curate dedup lines` first" });
    };
    let missing = dir.missing_units(units);
    if let Some(&first) = missing.first() {
        return Err(DedupError::Incomplete {
            work: work.to_owned(),
            stage: "lines",
            missing: missing.len(),
            units,
            first,
        });
    }
    Ok(units)
}

/// The hashes of the lines counted more than `max_repeats` times over every
/// unit in `work`: each file verified, then all merged in hash order, so that
/// memory holds the frequent lines and a small buffer per file, never every
/// distinct line.
pub fn frequent_lines(work: &Path, max_repeats: u32) -> Result<HashSet<u64>, DedupError> {
    let units = complete_units(work)?;
    raise_open_files_limit(units as u64 + 64);
    let mut cursors: Vec<Cursor> = (0..units)
        .map(|unit| {
            let path = counts_path(work, unit);
            Cursor::open(&path, unit as u32).map_err(|e| match e {
                DedupError::Read { path, source } if source.raw_os_error() == Some(libc::EMFILE) => {
                    DedupError::TooManyFiles { path, source, files: units }
                }
                e => e,
            })
        })
        .collect::<Result<_, _>>()?;
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some((hash, count)) = c.next()? {
            heap.push(Reverse((hash, i, count)));
        }
    }
    let mut frequent = HashSet::new();
    while let Some(Reverse((hash, i, count))) = heap.pop() {
        let mut total = count;
        if let Some((h, c)) = cursors[i].next()? {
            heap.push(Reverse((h, i, c)));
        }
        while let Some(&Reverse((same, j, c))) = heap.peek() {
            if same != hash {
                break;
            }
            heap.pop();
            total = total.saturating_add(c);
            if let Some((h, c)) = cursors[j].next()? {
                heap.push(Reverse((h, j, c)));
            }
        }
        if total > max_repeats {
            frequent.insert(hash);
        }
    }
    Ok(frequent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_after_normalisation() {
        assert_eq!(line_hash("Accept all cookies!"), line_hash("accept ALL cookies"));
        assert_eq!(line_hash("Page 3 of 10"), line_hash("Page 4 of 12"));
        assert_ne!(line_hash("Accept all cookies"), line_hash("Reject all cookies"));
        assert_eq!(line_hash("   "), None);
        assert_eq!(line_hash("***"), None);
    }

    #[test]
    fn the_merge_adds_every_unit_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage_dir(dir.path());
        stage.create().unwrap();
        stage.claim("test", 4, Task::ALONE, "").unwrap();
        let units = [
            HashMap::from([(1u64, 1u32), (5, 2), (9, 1)]),
            HashMap::from([(5u64, 1u32), (7, 4)]),
            HashMap::from([(1u64, 1u32), (2, 1), (9, 1), (u64::MAX, 2)]),
            HashMap::new(),
        ];
        for (u, counts) in units.iter().enumerate() {
            std::fs::write(counts_path(dir.path(), u), encode(u as u32, counts)).unwrap();
            if u < 3 {
                stage.mark_unit(u, &LineCountStats::default()).unwrap();
            }
        }
        // A unit without its marker (a task not finished) is refused by name.
        assert_eq!(
            frequent_lines(dir.path(), 1).unwrap_err().to_string(),
            format!(
                "{}: the line counts of 1 of 4 units are missing (unit 3 first); finish `curate dedup lines` first",
                dir.path().display()
            )
        );
        stage.mark_unit(3, &LineCountStats::default()).unwrap();
        // Totals: 1 → 2, 2 → 1, 5 → 3, 7 → 4, 9 → 2, MAX → 2.
        let sorted = |set: HashSet<u64>| {
            let mut v: Vec<u64> = set.into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(frequent_lines(dir.path(), 1).unwrap()), [1, 5, 7, 9, u64::MAX]);
        assert_eq!(sorted(frequent_lines(dir.path(), 2).unwrap()), [5, 7]);
        assert_eq!(sorted(frequent_lines(dir.path(), 4).unwrap()), Vec::<u64>::new());

        let path = counts_path(dir.path(), 1);
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 12] ^= 4;
        std::fs::write(&path, &flipped).unwrap();
        let err = frequent_lines(dir.path(), 1).unwrap_err().to_string();
        assert!(err.contains("unit-000001.counts") && err.contains("checksum"), "{err}");
        let message = |path: &Path| {
            frequent_lines(dir.path(), 1).unwrap_err().to_string().replace(&path.display().to_string(), "P")
        };
        std::fs::write(&path, &good[..n - 3]).unwrap();
        assert!(message(&path).contains("truncated"));
        std::fs::write(&path, encode(2, &units[1])).unwrap();
        assert!(message(&path).contains("written for unit 2"));
        std::fs::write(&path, b"PAR1").unwrap();
        assert!(message(&path).contains("not a curate line counts file"));
    }

    #[test]
    fn counts_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit-000003.counts");
        let counts = HashMap::from([(5u64, 2u32), (1, 7), (9, 1)]);
        std::fs::write(&path, encode(3, &counts)).unwrap();
        assert_eq!(read(&path, 3).unwrap(), [(1, 7), (5, 2), (9, 1)]);
        assert!(read(&path, 4).unwrap_err().to_string().contains("written for unit 3"));
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, 3).unwrap_err().to_string();
        assert!(err.contains("unit-000003.counts") && err.contains("checksum"), "{err}");
    }
}
