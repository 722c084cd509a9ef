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
//! ```
//!
//! Tasks share the units (`--rank`, `--world-size`) as `curate run` does; a
//! unit's file is written atomically and a rerun skips files that verify.
//! The `line_dedup` step ([`super::line_step`]) merges them all in hash
//! order ([`frequent_lines`]). Lines that normalise to nothing (blank,
//! punctuation only) are never counted. Memory: one unit's distinct lines
//! (about 24 bytes each) while counting; the frequent lines and a buffer
//! per file while merging.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

use super::frame;
use super::normalize::simplify_text;
use crate::doc::FieldNames;
use crate::engine::progress::{Progress, ProgressMode};
use crate::engine::stats::Occurrences;
use crate::engine::task::Task;
use crate::engine::workers::run_units;
use crate::io::atomic;
use crate::io::docs::UnitBatches;
use crate::io::plan::{self, Plan};
use crate::io::read::ReadOptions;

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
pub fn read(path: &Path, unit: u32) -> Result<Vec<(u64, u32)>, String> {
    let fail = |message: String| format!("{}: {message}", path.display());
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let (found, body) =
        frame::unwrap::<Header>(&bytes, MAGIC, "line counts", |h| h.lines as usize * h.record_bytes).map_err(fail)?;
    if found != header(unit, found.lines as usize) {
        return Err(fail(format!("written for unit {}, read as unit {unit}", found.unit)));
    }
    let records: Vec<(u64, u32)> = body
        .chunks_exact(RECORD_BYTES)
        .map(|c| {
            (u64::from_le_bytes(c[..8].try_into().expect("8 bytes")), u32::from_le_bytes(c[8..].try_into().expect("4")))
        })
        .collect();
    if records.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(fail("hashes out of order or repeated (the file must be sorted)".into()));
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineCountStats {
    pub units: u64,
    /// Units done by an earlier run, whose files verified.
    pub skipped_units: u64,
    pub docs: u64,
    pub lines: u64,
    /// Distinct lines, summed over units.
    pub distinct_lines: u64,
    pub error_docs: u64,
    /// Why records could not become documents, with examples naming the file and line.
    pub errors: BTreeMap<String, Occurrences>,
}

impl LineCountStats {
    fn merge(&mut self, other: &LineCountStats) {
        self.units += other.units;
        self.skipped_units += other.skipped_units;
        self.docs += other.docs;
        self.lines += other.lines;
        self.distinct_lines += other.distinct_lines;
        self.error_docs += other.error_docs;
        for (kind, occurrences) in &other.errors {
            self.errors.entry(kind.clone()).or_default().merge(occurrences);
        }
    }
}

#[derive(Serialize)]
struct Fingerprint<'a> {
    kind: &'a str,
    names: (&'a str, &'a str),
    plan: &'a Plan,
}

/// Counts the lines of this task's units.
pub fn run(options: &LineCountOptions) -> Result<LineCountStats, String> {
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(|e| e.to_string())?;
    let dir = options.work.join("lines");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fingerprint = Fingerprint { kind: "line counts", names: (&options.names.text, &options.names.id), plan: &plan };
    let fingerprint = format!("{:032x}", xxh3_128(&serde_json::to_vec(&fingerprint).expect("serialisable")));
    let run_path = dir.join("run.json");
    let owner = format!("rank-{}", options.task.rank);
    if atomic::claim(&run_path, &fingerprint, &owner).map_err(|e| format!("{}: {e}", run_path.display()))?
        == atomic::Claim::Other
    {
        return Err(format!(
            "{} holds line counts of another input; use another --work folder, or delete its lines/ folder",
            options.work.display()
        ));
    }
    let mine: Vec<usize> = (0..plan.units.len()).filter(|&u| options.task.owns(u)).collect();
    let read =
        Arc::new(ReadOptions { names: options.names.clone(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let progress = Progress::start(mine.iter().map(|&u| plan.units[u].bytes).sum(), options.progress);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(options.threads).build().map_err(|e| e.to_string())?;
    let abort = AtomicBool::new(false);
    let results = run_units(mine.len(), options.threads, &pool, &abort, |i| {
        let unit = mine[i];
        let path = counts_path(&options.work, unit);
        if read_ok(&path, unit) {
            progress.add(plan.units[unit].bytes, 0);
            return Ok(LineCountStats { units: 1, skipped_units: 1, ..Default::default() });
        }
        let mut stats = LineCountStats { units: 1, ..Default::default() };
        let mut counts: HashMap<u64, u32> = HashMap::new();
        let mut batches = UnitBatches::new(&plan, vec![unit], read.clone());
        while let Some((_, docs)) = batches.next_batch() {
            let hashes: Vec<Vec<u64>> =
                docs.par_iter().map(|d| d.text.lines().filter_map(line_hash).collect()).collect();
            for h in hashes.iter().flatten() {
                let c = counts.entry(*h).or_default();
                *c = c.saturating_add(1);
            }
            stats.docs += docs.len() as u64;
            stats.lines += hashes.iter().map(|h| h.len() as u64).sum::<u64>();
            progress.add(0, docs.len() as u64);
        }
        stats.error_docs = batches.error_docs;
        stats.errors = batches.errors;
        stats.distinct_lines = counts.len() as u64;
        super::commit(&path, &encode(unit as u32, &counts))?;
        progress.add(plan.units[unit].bytes, 0);
        Ok::<_, String>(stats)
    });
    progress.finish();
    let mut total = LineCountStats::default();
    for result in results.into_iter().flatten() {
        total.merge(&result?);
    }
    Ok(total)
}

fn read_ok(path: &Path, unit: usize) -> bool {
    if !path.is_file() {
        return false;
    }
    match read(path, unit as u32) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("curate: {e}; counting unit {unit} again");
            false
        }
    }
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
    fn open(path: &Path, unit: u32) -> Result<Cursor, String> {
        let fail = |message: String| format!("{}: {message}", path.display());
        // Pass 1: the envelope and the checksum, streamed.
        let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        let mut prefix = vec![0u8; 16];
        file.read_exact(&mut prefix).map_err(|_| fail("not a curate line counts file (too short)".into()))?;
        let head_end = frame::header_end(&prefix, MAGIC, "line counts").map_err(fail)?;
        prefix.resize(head_end, 0);
        file.read_exact(&mut prefix[16..]).map_err(|_| fail("truncated inside its header".into()))?;
        let found: Header = frame::parse_header(&prefix).map_err(fail)?;
        if found != header(unit, found.lines as usize) {
            return Err(fail(format!("written for unit {}, read as unit {unit}", found.unit)));
        }
        let want = head_end as u64 + found.lines * RECORD_BYTES as u64 + 8;
        if size != want {
            return Err(fail(format!(
                "{size} bytes, but its header announces {want}: the file is truncated or has extra bytes"
            )));
        }
        let mut hasher = Xxh3::new();
        hasher.update(&prefix);
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut left = found.lines * RECORD_BYTES as u64;
        while left > 0 {
            let buf = reader.fill_buf().map_err(|e| fail(e.to_string()))?;
            if buf.is_empty() {
                return Err(fail("truncated while being read".into()));
            }
            let take = buf.len().min(left as usize);
            hasher.update(&buf[..take]);
            reader.consume(take);
            left -= take as u64;
        }
        let mut stored = [0u8; 8];
        reader.read_exact(&mut stored).map_err(|e| fail(e.to_string()))?;
        if hasher.digest() != u64::from_le_bytes(stored) {
            return Err(fail("checksum mismatch: the file is damaged".into()));
        }
        // Pass 2 starts at the first record.
        let mut file = reader.into_inner();
        file.seek(SeekFrom::Start(head_end as u64)).map_err(|e| fail(e.to_string()))?;
        Ok(Cursor {
            reader: BufReader::with_capacity(1 << 14, file),
            path: path.to_path_buf(),
            remaining: found.lines,
            last: None,
        })
    }

    fn next(&mut self) -> Result<Option<(u64, u32)>, String> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let mut record = [0u8; RECORD_BYTES];
        self.reader.read_exact(&mut record).map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.remaining -= 1;
        let hash = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
        if self.last.is_some_and(|last| last >= hash) {
            return Err(format!("{}: hashes out of order or repeated (the file must be sorted)", self.path.display()));
        }
        self.last = Some(hash);
        Ok(Some((hash, u32::from_le_bytes(record[8..].try_into().expect("4 bytes")))))
    }
}

/// Lifts the soft limit of open files towards `wanted` (as far as the hard
/// limit allows): the merge keeps one file per unit open, and the usual
/// soft limit of 1,024 is below a large corpus's unit count.
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

/// The hashes of the lines counted more than `max_repeats` times over every
/// unit in `work`: each file verified, then all merged in hash order, so that
/// memory holds the frequent lines and a small buffer per file, never every
/// distinct line.
pub fn frequent_lines(work: &Path, max_repeats: u32) -> Result<HashSet<u64>, String> {
    let dir = work.join("lines");
    let mut units: Vec<(usize, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e} (run `curate dedup lines` first)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let unit = name.strip_prefix("unit-")?.strip_suffix(".counts")?.parse().ok()?;
            Some((unit, p))
        })
        .collect();
    units.sort();
    if units.is_empty() {
        return Err(format!("{}: no line counts (run `curate dedup lines` first)", dir.display()));
    }
    raise_open_files_limit(units.len() as u64 + 64);
    let mut cursors: Vec<Cursor> = units
        .iter()
        .map(|(unit, path)| {
            Cursor::open(path, *unit as u32).map_err(|e| {
                if e.contains("Too many open files") {
                    format!("{e}: the merge opens all {} counts files at once; raise `ulimit -n`", units.len())
                } else {
                    e
                }
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
        std::fs::create_dir(dir.path().join("lines")).unwrap();
        let units = [
            HashMap::from([(1u64, 1u32), (5, 2), (9, 1)]),
            HashMap::from([(5u64, 1u32), (7, 4)]),
            HashMap::from([(1u64, 1u32), (2, 1), (9, 1), (u64::MAX, 2)]),
            HashMap::new(),
        ];
        for (u, counts) in units.iter().enumerate() {
            std::fs::write(counts_path(dir.path(), u), encode(u as u32, counts)).unwrap();
        }
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
        let err = frequent_lines(dir.path(), 1).unwrap_err();
        assert!(err.contains("unit-000001.counts") && err.contains("checksum"), "{err}");
        std::fs::write(&path, &good[..n - 3]).unwrap();
        assert!(frequent_lines(dir.path(), 1).unwrap_err().contains("truncated"));
        std::fs::write(&path, encode(2, &units[1])).unwrap();
        assert!(frequent_lines(dir.path(), 1).unwrap_err().contains("written for unit 2"));
        std::fs::write(&path, b"PAR1").unwrap();
        assert!(frequent_lines(dir.path(), 1).unwrap_err().contains("not a curate line counts file"));
    }

    #[test]
    fn counts_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit-000003.counts");
        let counts = HashMap::from([(5u64, 2u32), (1, 7), (9, 1)]);
        std::fs::write(&path, encode(3, &counts)).unwrap();
        assert_eq!(read(&path, 3).unwrap(), [(1, 7), (5, 2), (9, 1)]);
        assert!(read(&path, 4).unwrap_err().contains("written for unit 3"));
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, 3).unwrap_err();
        assert!(err.contains("unit-000003.counts") && err.contains("checksum"), "{err}");
    }
}
