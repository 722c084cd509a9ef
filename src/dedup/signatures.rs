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
//! `--world-size`), and a document is named by its [`Place`]: its unit and
//! its index in it, which any later stage recomputes by reading the unit
//! again. The stage runs through the stage driver ([`crate::stage`]): a
//! unit's files are published, then its marker; a rerun skips marked units
//! whose files verify, and redoes the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use super::docinfo::{self, DocInfo};
use super::error::{DedupError, IndexProblem};
use super::minhash::{Method, MinHashConfig, MinHasher, Shingles};
use super::normalize::TextNorm;
use super::sigfile::{self, Records};
use crate::io::atomic;
use crate::io::doc::{FieldNames, Place};
use crate::io::docs::UnitBatches;
use crate::io::plan::{self, Ignored, Plan, Unit};
use crate::io::read::ReadOptions;
use crate::runtime::options::Named;
use crate::runtime::pool;
use crate::runtime::progress::{ProgressMode, UnitProgress};
use crate::runtime::tally::ErrorTally;
use crate::runtime::task::Task;
use crate::stage::{Stage, StageDir, StageError, StageStats, Unbalanced};

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

/// A unit's or a task's counts: `input_docs = signed_docs + short_docs + error_docs`.
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
    #[serde(flatten)]
    pub errors: ErrorTally,
}

impl StageStats for SignatureStats {
    fn merge(&mut self, other: &SignatureStats) {
        self.units += other.units;
        self.input_docs += other.input_docs;
        self.signed_docs += other.signed_docs;
        self.short_docs += other.short_docs;
        self.missing_priority += other.missing_priority;
        self.errors.merge(&other.errors);
    }

    fn docs(&self) -> u64 {
        self.input_docs
    }

    fn check(&self) -> Result<(), Unbalanced> {
        let accounted = self.signed_docs + self.short_docs + self.errors.docs;
        if self.input_docs != accounted {
            return Err(Unbalanced(format!(
                "input_docs {} != signed_docs {} + short_docs {} + error_docs {}",
                self.input_docs, self.signed_docs, self.short_docs, self.errors.docs
            )));
        }
        self.errors.imbalance().map_or(Ok(()), |why| Err(Unbalanced(why)))
    }
}

/// What a task of the stage reports.
pub struct SignatureReport {
    pub stats: SignatureStats,
    /// Units done by an earlier run, whose files verified.
    pub done_before: usize,
    /// Where the task's stats are.
    pub stats_path: PathBuf,
    /// What the input holds that was not read, and why.
    pub ignored: Vec<Ignored>,
}

pub fn band_path(work: &Path, band: usize, unit: usize) -> PathBuf {
    work.join("signatures").join(format!("band-{band:03}")).join(format!("unit-{unit:06}.sig"))
}

/// The stage's bookkeeping: `WORK/signatures/{run.json,units/}` and `WORK/signatures/stats/`.
pub fn stage_dir(work: &Path) -> StageDir {
    StageDir::within(work.join("signatures"))
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

    pub fn path(work: &Path) -> PathBuf {
        work.join("signatures").join("params.json")
    }

    pub fn load(work: &Path) -> Result<StageParams, DedupError> {
        let path = StageParams::path(work);
        if !path.is_file() {
            return Err(DedupError::NotReady { path, hint: "run `curate dedup signatures` with this --work first" });
        }
        let bytes = std::fs::read(&path).map_err(DedupError::read(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| DedupError::damaged(&path)(super::error::Fault::Header(e)))
    }
}

/// The counts of a unit whose signatures are complete.
pub fn unit_stats(work: &Path, unit: usize) -> Result<SignatureStats, DedupError> {
    let dir = stage_dir(work);
    dir.unit_done(unit).ok_or_else(|| DedupError::NotReady {
        path: dir.unit_path(unit),
        hint: "its signatures are not complete; finish `curate dedup signatures` first",
    })
}

/// Units whose signatures are not complete.
pub fn missing_units(work: &Path, units: usize) -> Vec<usize> {
    stage_dir(work).missing_units(units)
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
pub fn run(options: &SignatureOptions) -> Result<SignatureReport, DedupError> {
    let c = &options.config;
    c.validate()?;
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(StageError::from)?;
    let index = match &options.index {
        Some(work) => Some(index_ref(work, c)?),
        None => None,
    };
    let params = StageParams { priority: options.priority.clone(), index, ..StageParams::new(c, plan.units.len()) };
    let dir = stage_dir(&options.work);
    dir.create()?;
    let work = &options.work;
    let intact = |unit: usize| files_intact(work, c, unit);
    let holds = "signatures of another input or other parameters";
    let stage = Stage::<SignatureStats>::claim(
        &dir,
        &plan,
        options.task,
        &fingerprint(&params, &options.names, &plan),
        holds,
        intact,
    )?;
    atomic::write_shared(
        &StageParams::path(work),
        &serde_json::to_vec_pretty(&params).expect("serialisable"),
        &options.task.name(),
    )?;
    let done_before = stage.done_before();
    let hasher = MinHasher::new(*c)?;
    let read =
        Arc::new(ReadOptions { names: options.names.clone(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let pool = pool::pool(options.threads).map_err(StageError::from)?;
    let signer = Signer { plan: &plan, read, hasher: &hasher, options };
    let stats =
        stage.run(SignatureStats::default(), &pool, options.threads, options.progress, |unit, progress, _| {
            signer.unit(unit, progress).map(Some)
        })?;
    Ok(SignatureReport { stats, done_before, stats_path: dir.task_path(options.task), ignored: plan.ignored })
}

/// Whether a unit's band and document files all verify. A damaged file is
/// reported and its unit done again: signatures are deterministic, so
/// nothing is lost.
fn files_intact(work: &Path, config: &MinHashConfig, unit: usize) -> bool {
    let check = (0..config.bands)
        .try_for_each(|band| sigfile::read(&band_path(work, band, unit), config, band, unit as u32).map(drop))
        .and_then(|()| docinfo::read(&docinfo::path(work, unit), unit as u32).map(drop));
    match check {
        Ok(()) => true,
        Err(e) => {
            eprintln!("curate: {e}; computing unit {unit} again");
            false
        }
    }
}

/// The earlier dataset at `work`, once its signatures are complete and made
/// with the same method and parameters as `config`.
fn index_ref(work: &Path, config: &MinHashConfig) -> Result<IndexRef, DedupError> {
    let problem = |problem| DedupError::Index { work: work.to_owned(), problem: Box::new(problem) };
    let theirs = StageParams::load(work).map_err(|e| problem(IndexProblem::Unusable(Box::new(e))))?;
    if theirs.config() != *config {
        return Err(problem(IndexProblem::Parameters {
            theirs: theirs.config().to_string(),
            ours: config.to_string(),
        }));
    }
    if theirs.index.is_some() {
        return Err(problem(IndexProblem::Chained));
    }
    let missing = missing_units(work, theirs.units);
    if let Some(&first) = missing.first() {
        return Err(problem(IndexProblem::Incomplete { missing: missing.len(), units: theirs.units, first }));
    }
    let canonical =
        work.canonicalize().map_err(|e| problem(IndexProblem::Unusable(Box::new(DedupError::read(work)(e)))))?;
    Ok(IndexRef { work: canonical, units: theirs.units })
}

/// Everything signing a unit needs, built once per task.
struct Signer<'a> {
    plan: &'a Plan,
    read: Arc<ReadOptions>,
    hasher: &'a MinHasher,
    options: &'a SignatureOptions,
}

impl Signer<'_> {
    /// Signs a unit's documents and publishes its band and document files.
    fn unit(&self, unit: &Unit, progress: &mut UnitProgress) -> Result<SignatureStats, DedupError> {
        let work = &self.options.work;
        let c = &self.options.config;
        let index = unit.index;
        let mut stats = SignatureStats { units: 1, ..Default::default() };
        let mut bands: Vec<Records> = vec![Records::new(c.rows); c.bands];
        let mut infos = Vec::new();
        let mut batches = UnitBatches::new(self.plan, vec![index], self.read.clone());
        let mut place = Place { unit: index as u32, index: 0 };
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
            progress.docs(docs.len() as u64);
            progress.read_to(batches.bytes_read());
            stats.input_docs += docs.len() as u64;
            for signature in signatures {
                match signature {
                    Some(s) => {
                        for (band, records) in bands.iter_mut().enumerate() {
                            records.push(&s[band * c.rows..(band + 1) * c.rows], place);
                        }
                        stats.signed_docs += 1;
                    }
                    None => stats.short_docs += 1,
                }
                place.index += 1;
            }
        }
        stats.input_docs += batches.errors.docs;
        stats.errors = batches.errors;
        let write = |path: PathBuf, content: Vec<u8>| -> Result<(), DedupError> {
            atomic::create_dir(path.parent().expect("a band folder"))?;
            Ok(atomic::write(&path, &content)?)
        };
        // Each band is written as soon as it is encoded, so that its records
        // and its bytes are freed band by band.
        bands.into_par_iter().enumerate().try_for_each(|(band, records)| {
            write(band_path(work, band, index), sigfile::encode(c, band, index as u32, records))
        })?;
        write(docinfo::path(work, index), docinfo::encode(index as u32, &infos))?;
        Ok(stats)
    }
}
