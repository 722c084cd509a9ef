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
//! The `line_dedup` step ([`super::line_step`]) reads them all. Lines that
//! normalise to nothing (blank, punctuation only) are never counted.
//! Memory: one unit's distinct lines (about 24 bytes each).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use super::frame;
use super::normalize::simplify_text;
use crate::doc::FieldNames;
use crate::engine::progress::{Progress, ProgressMode};
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
        stats.distinct_lines = counts.len() as u64;
        super::commit(&path, &encode(unit as u32, &counts))?;
        progress.add(plan.units[unit].bytes, 0);
        Ok::<_, String>(stats)
    });
    progress.finish();
    let mut total = LineCountStats::default();
    for result in results.into_iter().flatten() {
        let s = result?;
        total.units += s.units;
        total.skipped_units += s.skipped_units;
        total.docs += s.docs;
        total.lines += s.lines;
        total.distinct_lines += s.distinct_lines;
        total.error_docs += s.error_docs;
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

/// The hashes of the lines counted more than `max_repeats` times over every
/// unit in `work` (each file verified).
pub fn frequent_lines(work: &Path, max_repeats: u32) -> Result<std::collections::HashSet<u64>, String> {
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
    let mut totals: HashMap<u64, u32> = HashMap::new();
    for (unit, path) in units {
        for (hash, count) in read(&path, unit as u32)? {
            let c = totals.entry(hash).or_default();
            *c = c.saturating_add(count);
        }
    }
    Ok(totals.into_iter().filter(|&(_, c)| c > max_repeats).map(|(h, _)| h).collect())
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
