//! The signature stage: MinHash signatures of every document, one sorted
//! [`sigfile`] per unit of input and band, for the bucket stage to merge.
//!
//! ```text
//! WORK/signatures/run.json                 parameters and input fingerprint
//! WORK/signatures/params.json              the parameters and unit count, for the later stages
//! WORK/signatures/band-003/unit-000012.sig band 3 of unit 12's documents
//! WORK/signatures/docs/unit-000012.docs   unit 12's document ids and priorities
//! WORK/signatures/units/unit-000012.json   unit 12 is complete (its counts)
//! ```
//!
//! With `index`, the work folder of an earlier dataset's signatures (same
//! method and parameters), the later stages match this input against that
//! one too and remove from this input every document that has a copy there
//! (incremental dedup); the earlier dataset is never changed.
//!
//! Units are the engine's (a compressed file, a byte range, a row group),
//! shared between tasks as `curate run` shares them (`--rank`,
//! `--world-size`), and a document is named by its unit and its place in
//! it, which any later stage recomputes by reading the unit again. A unit's
//! files are written under temporary names and renamed, then its marker; a
//! rerun skips marked units whose files verify, and redoes the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use super::docinfo::{self, DocInfo};
use super::minhash::{Method, MinHashConfig, MinHasher, Shingles};
use super::normalize::TextNorm;
use super::sigfile::{self, Records};
use crate::doc::FieldNames;
use crate::engine::progress::{Progress, ProgressMode};
use crate::engine::stats::Occurrences;
use crate::engine::task::Task;
use crate::engine::workers::run_units;
use crate::io::atomic;
use crate::io::docs::UnitBatches;
use crate::io::plan::{self, Plan};
use crate::io::read::ReadOptions;

/// Plain JSON Lines files are cut into units of this many bytes, as `curate run` cuts them.
const SPLIT_BYTES: u64 = 256 << 20;

pub struct SignatureOptions {
    pub input: String,
    pub names: FieldNames,
    pub work: PathBuf,
    pub config: MinHashConfig,
    /// A numeric field: in each cluster the document with the highest value
    /// is kept (ties: the first in input order).
    pub priority: Option<String>,
    /// An earlier dataset's work folder to deduplicate against.
    pub index: Option<PathBuf>,
    pub task: Task,
    pub threads: usize,
    pub batch_size: usize,
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignatureStats {
    pub units: u64,
    pub input_docs: u64,
    /// Documents with a signature.
    pub signed_docs: u64,
    /// Documents with fewer words than an n-gram: no signature, never a duplicate.
    pub short_docs: u64,
    /// Documents without a numeric priority field (they lose every tie).
    #[serde(default)]
    pub missing_priority: u64,
    pub error_docs: u64,
    pub errors: BTreeMap<String, Occurrences>,
}

impl SignatureStats {
    fn merge(&mut self, other: &SignatureStats) {
        self.units += other.units;
        self.input_docs += other.input_docs;
        self.signed_docs += other.signed_docs;
        self.short_docs += other.short_docs;
        self.missing_priority += other.missing_priority;
        self.error_docs += other.error_docs;
        for (kind, occurrences) in &other.errors {
            self.errors.entry(kind.clone()).or_default().merge(occurrences);
        }
    }
}

pub fn band_path(work: &Path, band: usize, unit: usize) -> PathBuf {
    work.join("signatures").join(format!("band-{band:03}")).join(format!("unit-{unit:06}.sig"))
}

fn marker_path(work: &Path, unit: usize) -> PathBuf {
    work.join("signatures").join("units").join(format!("unit-{unit:06}.json"))
}

/// What the later stages need to know of the signatures: read from
/// `signatures/params.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageParams {
    pub method: Method,
    #[serde(default)]
    pub norm: TextNorm,
    #[serde(default)]
    pub shingles: Shingles,
    pub n_grams: usize,
    pub bands: usize,
    pub rows: usize,
    pub seed: u32,
    pub units: usize,
    #[serde(default)]
    pub max_distance: u32,
    #[serde(default)]
    pub blocks: u32,
    /// The field that chose the kept copy, if any.
    #[serde(default)]
    pub priority: Option<String>,
    /// The earlier dataset this one is deduplicated against, if any.
    #[serde(default)]
    pub index: Option<IndexRef>,
}

/// An earlier dataset's signatures, as the later stages read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRef {
    pub work: PathBuf,
    pub units: usize,
}

/// Edges and removal lists name an index document's unit as this plus its
/// unit number, so that the two datasets' units never collide.
pub const INDEX_UNIT: u32 = 1 << 31;

impl StageParams {
    /// The parameters of signatures made with `config` from `units` units,
    /// without a priority field or an index.
    pub fn new(config: &MinHashConfig, units: usize) -> StageParams {
        StageParams {
            method: config.method,
            norm: config.norm,
            shingles: config.shingles,
            n_grams: config.n_grams,
            bands: config.bands,
            rows: config.rows,
            seed: config.seed,
            units,
            max_distance: config.max_distance,
            blocks: config.blocks,
            priority: None,
            index: None,
        }
    }

    pub fn config(&self) -> MinHashConfig {
        MinHashConfig {
            method: self.method,
            norm: self.norm,
            shingles: self.shingles,
            n_grams: self.n_grams,
            bands: self.bands,
            rows: self.rows,
            seed: self.seed,
            max_distance: self.max_distance,
            blocks: self.blocks,
        }
    }

    pub fn load(work: &Path) -> Result<StageParams, String> {
        let path = work.join("signatures").join("params.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("{}: {e} (run `curate dedup signatures` with this --work first)", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The counts of a unit whose signatures are complete.
pub fn unit_stats(work: &Path, unit: usize) -> Result<SignatureStats, String> {
    let path = marker_path(work, unit);
    let bytes =
        std::fs::read(&path).map_err(|e| format!("{}: {e} (its signatures are not complete)", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether every unit's signatures are complete.
pub fn missing_units(work: &Path, units: usize) -> Vec<usize> {
    (0..units).filter(|&u| !marker_path(work, u).is_file()).collect()
}

/// What must match for signatures of two runs to belong together.
#[derive(Serialize)]
struct Fingerprint<'a> {
    method: &'a str,
    norm: TextNorm,
    shingles: Shingles,
    n_grams: usize,
    bands: usize,
    rows: usize,
    seed: u32,
    simhash: (u32, u32),
    names: (&'a str, &'a str),
    plan: &'a Plan,
    priority: Option<&'a str>,
    index: Option<&'a IndexRef>,
}

/// The fingerprint of the signatures of `plan`'s input made with
/// `params`, kept in `signatures/run.json`.
pub fn fingerprint(params: &StageParams, names: &FieldNames, plan: &Plan) -> String {
    let fingerprint = Fingerprint {
        method: params.method.name(),
        norm: params.norm,
        shingles: params.shingles,
        n_grams: params.n_grams,
        bands: params.bands,
        rows: params.rows,
        seed: params.seed,
        simhash: (params.max_distance, params.blocks),
        names: (&names.text, &names.id),
        plan,
        priority: params.priority.as_deref(),
        index: params.index.as_ref(),
    };
    format!("{:032x}", xxh3_128(&serde_json::to_vec(&fingerprint).expect("serialisable")))
}

/// Computes this task's units' signatures; returns the counts of the units
/// it owns (done now or before).
pub fn run(options: &SignatureOptions) -> Result<SignatureStats, String> {
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(|e| e.to_string())?;
    let dir = options.work.join("signatures");
    std::fs::create_dir_all(dir.join("units")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let c = &options.config;
    let index = match &options.index {
        Some(work) => Some(index_ref(work, c)?),
        None => None,
    };
    let params = StageParams { priority: options.priority.clone(), index, ..StageParams::new(c, plan.units.len()) };
    let fingerprint = fingerprint(&params, &options.names, &plan);
    let run_path = dir.join("run.json");
    let owner = format!("rank-{}", options.task.rank);
    // Tasks may start together: each claims the folder with its own temporary file.
    if atomic::claim(&run_path, &fingerprint, &owner).map_err(|e| format!("{}: {e}", run_path.display()))?
        == atomic::Claim::Other
    {
        return Err(format!(
            "{} holds signatures of another input or other parameters; use another --work folder, or delete this one",
            options.work.display()
        ));
    }

    let params_path = dir.join("params.json");
    atomic::write_shared(&params_path, &serde_json::to_vec_pretty(&params).expect("serialisable"), &owner)
        .map_err(|e| format!("{}: {e}", params_path.display()))?;
    let mine: Vec<usize> = (0..plan.units.len()).filter(|&u| options.task.owns(u)).collect();
    let hasher = MinHasher::new(*c);
    let read =
        Arc::new(ReadOptions { names: options.names.clone(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let progress = Progress::start(mine.iter().map(|&u| plan.units[u].bytes).sum(), options.progress);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(options.threads).build().map_err(|e| e.to_string())?;
    let abort = AtomicBool::new(false);
    let unit_context = UnitContext { plan: &plan, read, hasher: &hasher, options, progress: &progress };
    let results = run_units(mine.len(), options.threads, &pool, &abort, |i| unit_context.process(mine[i]));
    progress.finish();
    let mut stats = SignatureStats::default();
    for result in results.into_iter().flatten() {
        stats.merge(&result?);
    }
    Ok(stats)
}

/// The earlier dataset at `work`, once its signatures are complete and made
/// with the same method and parameters as `config`.
fn index_ref(work: &Path, config: &MinHashConfig) -> Result<IndexRef, String> {
    let theirs = StageParams::load(work).map_err(|e| format!("--index: {e}"))?;
    if theirs.config() != *config {
        return Err(format!(
            "--index {}: its signatures were made with {:?}; this run uses {config:?}: they cannot be matched",
            work.display(),
            theirs.config()
        ));
    }
    if theirs.index.is_some() {
        return Err(format!(
            "--index {}: that dataset was itself deduplicated against another; index the dataset it was matched \
             against separately",
            work.display()
        ));
    }
    let missing = missing_units(work, theirs.units);
    if let Some(first) = missing.first() {
        return Err(format!(
            "--index {}: {} of its {} units have no signatures (unit {first} first)",
            work.display(),
            missing.len(),
            theirs.units
        ));
    }
    let work = work.canonicalize().map_err(|e| format!("--index {}: {e}", work.display()))?;
    Ok(IndexRef { work, units: theirs.units })
}

struct UnitContext<'a> {
    plan: &'a Plan,
    read: Arc<ReadOptions>,
    hasher: &'a MinHasher,
    options: &'a SignatureOptions,
    progress: &'a Progress,
}

impl UnitContext<'_> {
    fn process(&self, unit: usize) -> Result<SignatureStats, String> {
        let work = &self.options.work;
        let c = &self.options.config;
        let bytes = self.plan.units[unit].bytes;
        if let Some(stats) = self.done_before(unit) {
            self.progress.add(bytes, stats.input_docs);
            return Ok(stats);
        }
        let mut stats = SignatureStats { units: 1, ..Default::default() };
        let mut bands: Vec<Records> = vec![Records::new(c.rows); c.bands];
        let mut infos = Vec::new();
        let mut batches = UnitBatches::new(self.plan, vec![unit], self.read.clone());
        let mut doc = 0u32;
        while let Some((_, docs)) = batches.next_batch() {
            for d in &docs {
                let priority = match &self.options.priority {
                    Some(field) => {
                        let value = d
                            .fields
                            .iter()
                            .find(|(name, _)| name == field)
                            .and_then(|(_, raw)| docinfo::priority_of(raw.get()));
                        if value.is_none() {
                            stats.missing_priority += 1;
                        }
                        value.unwrap_or(f64::NAN)
                    }
                    None => f64::NAN,
                };
                infos.push(DocInfo { id: d.id.clone(), priority });
            }
            let signatures: Vec<Option<Vec<u64>>> = docs.par_iter().map(|d| self.hasher.signature(&d.text)).collect();
            self.progress.add(0, docs.len() as u64);
            stats.input_docs += docs.len() as u64;
            for signature in signatures {
                match signature {
                    Some(s) => {
                        for (band, records) in bands.iter_mut().enumerate() {
                            records.push(&s[band * c.rows..(band + 1) * c.rows], unit as u32, doc);
                        }
                        stats.signed_docs += 1;
                    }
                    None => stats.short_docs += 1,
                }
                doc += 1;
            }
        }
        stats.input_docs += batches.error_docs;
        stats.error_docs = batches.error_docs;
        stats.errors = batches.errors;
        let write = |path: PathBuf, content: Vec<u8>| -> Result<(), String> {
            let parent = path.parent().expect("a band folder");
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            super::commit(&path, &content)
        };
        // Each band is written as soon as it is encoded, so that its records
        // and its bytes are freed band by band.
        bands.into_par_iter().enumerate().try_for_each(|(band, records)| {
            write(band_path(work, band, unit), sigfile::encode(c, band, unit as u32, records))
        })?;
        write(docinfo::path(work, unit), docinfo::encode(unit as u32, &infos))?;
        let marker = marker_path(work, unit);
        super::commit(&marker, &serde_json::to_vec(&stats).expect("serialisable"))?;
        self.progress.add(bytes, 0);
        Ok(stats)
    }

    /// A unit finished by an earlier run, whose band files all verify. A
    /// damaged file is reported and its unit done again: signatures are
    /// deterministic, so nothing is lost.
    fn done_before(&self, unit: usize) -> Option<SignatureStats> {
        let work = &self.options.work;
        let c = &self.options.config;
        let stats: SignatureStats = serde_json::from_slice(&std::fs::read(marker_path(work, unit)).ok()?).ok()?;
        for band in 0..c.bands {
            if let Err(e) = sigfile::read(&band_path(work, band, unit), c, band, unit as u32) {
                eprintln!("curate: {e}; computing unit {unit} again");
                return None;
            }
        }
        if let Err(e) = docinfo::read(&docinfo::path(work, unit), unit as u32) {
            eprintln!("curate: {e}; computing unit {unit} again");
            return None;
        }
        Some(stats)
    }
}
