//! `curate dedup`: the stages of duplicate detection (`signatures`,
//! `buckets`, `clusters`, or `all` of them locally; the `dedup` step is the
//! fourth) and the line counts of line-level dedup (`lines`; the
//! `line_dedup` step uses them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use curate::dedup::lines::{self, LineCountOptions};
use curate::dedup::minhash::{Method, MinHashConfig, Shingles, MAX_HASHES};
use curate::dedup::normalize::{NormStep, TextNorm};
use curate::dedup::signatures::{self, SignatureOptions};
use curate::dedup::{buckets, clusters};
use curate::io::atomic;
use curate::io::doc::FieldNames;
use curate::runtime::options::Named;
use curate::runtime::progress::ProgressMode;
use curate::runtime::task::Task;

use super::{named, print_errors, usage, Error, InputArgs};

#[derive(Subcommand)]
pub enum DedupCommand {
    /// Signatures of every document (MinHash with datatrove's defaults, SimHash, or an exact hash), one sorted file per unit of input and band.
    ///
    /// Runs as one task of many (--rank, --world-size, or Slurm's and torchrun's
    /// variables) over shared storage; a rerun skips finished units.
    Signatures(SignatureArgs),
    /// Join documents whose hashes agree in a band into buckets, written as edges per band.
    ///
    /// Reads and verifies every signature file; tasks share the bands, or with
    /// --ranges the parts of bands (each band's hashes cut into equal ranges).
    Buckets {
        /// The folder given to `curate dedup signatures`.
        #[arg(long)]
        work: PathBuf,
        /// Cut each band into this many hash ranges, one task's work each: a task holds one range's records.
        #[arg(long, default_value_t = 1)]
        ranges: usize,
        #[arg(long)]
        rank: Option<usize>,
        #[arg(long)]
        world_size: Option<usize>,
        #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
        progress: ProgressMode,
    },
    /// Count every line of the corpus (normalised as datatrove does), for the `line_dedup` step.
    ///
    /// Runs as one task of many (--rank, --world-size) over shared storage;
    /// writes WORK/lines/unit-*.counts, and a rerun skips finished units.
    Lines(LineArgs),
    /// Join the bands' edges into clusters of near-duplicates and list every document but the one each cluster keeps.
    ///
    /// One task (parallel over the bands, 8 bytes of memory per document); writes
    /// WORK/clusters/remove.dups, kept.ids and stats.json.
    Clusters {
        /// The folder given to the earlier stages.
        #[arg(long)]
        work: PathBuf,
    },
    /// Run signatures, buckets and clusters one after another on this machine, as one task each.
    ///
    /// Takes the flags of `signatures` (but not --rank or --world-size) and
    /// --ranges of `buckets`; then a pipeline's `dedup` step with this --work
    /// does the filtering.
    All {
        #[command(flatten)]
        signatures: SignatureArgs,
        /// Cut each band into this many hash ranges in the bucket stage.
        #[arg(long, default_value_t = 1)]
        ranges: usize,
    },
}

/// How a stage that reads the input runs: which task of how many, in what batches, showing what.
#[derive(clap::Args)]
pub struct StageRunArgs {
    /// This task's rank (also SLURM_ARRAY_TASK_ID, SLURM_PROCID or RANK).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Number of tasks (also SLURM_ARRAY_TASK_COUNT, SLURM_NTASKS or WORLD_SIZE).
    #[arg(long)]
    pub world_size: Option<usize>,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
    pub progress: ProgressMode,
}

#[derive(clap::Args)]
pub struct LineArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder for the counts (lines/ goes here).
    #[arg(long)]
    pub work: PathBuf,
    #[command(flatten)]
    pub run: StageRunArgs,
}

#[derive(clap::Args)]
pub struct SignatureArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder for the stages' files (signatures/ goes here).
    #[arg(long)]
    pub work: PathBuf,
    /// minhash (near-duplicates), simhash (near-duplicates by Hamming distance), exact (copies after datatrove's normalisation) or exact-raw (byte-identical text).
    #[arg(long, value_parser = named::<Method>(), default_value = "minhash")]
    pub method: Method,
    /// Normalisation steps before hashing (datatrove's TextNormConfig): any of lowercase, whitespace, punctuation, diacritics, numbers, weekdays, months; or none.
    #[arg(
        long,
        value_parser = named::<NormStep>(),
        value_delimiter = ',',
        default_value = "lowercase,whitespace,punctuation,diacritics,numbers"
    )]
    pub normalize: Vec<NormStep>,
    /// What a shingle is: n consecutive words (datatrove's choice) or n consecutive characters of the normalised text.
    #[arg(long, value_parser = named::<Shingles>(), default_value = "words")]
    pub shingles: Shingles,
    /// Words (or characters) per shingle.
    #[arg(long, default_value_t = 5)]
    pub n_grams: usize,
    #[arg(long, default_value_t = 14)]
    pub bands: usize,
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
    /// Seed of the hash permutations (numpy's RandomState, as datatrove draws them).
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// A numeric field: each cluster keeps its document with the highest value (ties, and documents without one: the first in input order).
    #[arg(long)]
    pub priority: Option<String>,
    /// The work folder of an earlier dataset's signatures (same method and parameters): remove from this input every document with a copy there, and nothing from it.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Choose bands × rows (keeping their product) for this Jaccard similarity.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// SimHash: the largest Hamming distance (of 64 bits) between near-duplicates.
    #[arg(long, default_value_t = 3)]
    pub max_distance: u32,
    /// SimHash: blocks the fingerprint is cut into; one table per choice of blocks − max_distance of them.
    #[arg(long, default_value_t = 6)]
    pub blocks: u32,
    #[command(flatten)]
    pub run: StageRunArgs,
}

pub fn dedup(command: DedupCommand) -> Result<ExitCode, Error> {
    let env = |k: &str| std::env::var(k).ok();
    match command {
        DedupCommand::Signatures(args) => {
            let task = Task::resolve(args.run.rank, args.run.world_size, env)?;
            signatures(args, task)?
        }
        DedupCommand::Buckets { work, ranges, rank, world_size, progress } => {
            buckets(&work, ranges, Task::resolve(rank, world_size, env)?, progress)?
        }
        DedupCommand::Clusters { work } => clusters(&work)?,
        DedupCommand::Lines(args) => lines(args)?,
        DedupCommand::All { signatures: args, ranges } => all(args, ranges)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The three stages in turn, each as the only task (whatever a launcher's
/// variables say: this command is the local run).
fn all(args: SignatureArgs, ranges: usize) -> Result<(), Error> {
    if args.run.rank.is_some() || args.run.world_size.is_some() {
        return Err(usage(
            "`curate dedup all` runs every stage as one task; run the stages one by one to share them \
             between tasks (--rank, --world-size)",
        ));
    }
    let work = args.work.clone();
    let progress = args.run.progress;
    signatures(args, Task::ALONE)?;
    buckets(&work, ranges, Task::ALONE, progress)?;
    clusters(&work)?;
    eprintln!(
        "curate: dedup ready; a pipeline step [[step]] type = \"dedup\" work = \"{}\" removes the duplicates",
        work.display()
    );
    Ok(())
}

fn lines(args: LineArgs) -> Result<(), Error> {
    let task = Task::resolve(args.run.rank, args.run.world_size, |k| std::env::var(k).ok())?;
    let options = LineCountOptions {
        threads: args.input.threads()?,
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field, raw_text: false },
        work: args.work,
        task,
        batch_size: args.run.batch_size,
        progress: args.run.progress,
    };
    let report = lines::run(&options)?;
    for ignored in &report.ignored {
        eprintln!("curate: {ignored}");
    }
    let stats = &report.stats;
    eprintln!(
        "curate: {} lines of {} documents in {} units ({} done before), {} distinct per unit summed, {} errors; stats in {}",
        stats.lines,
        stats.docs,
        stats.units,
        report.done_before,
        stats.distinct_lines,
        stats.errors.docs,
        report.stats_path.display()
    );
    print_errors(&stats.errors.kinds);
    Ok(())
}

/// The signature parameters the flags ask for, checked as flags (each
/// refusal names the flag).
fn signature_config(args: &SignatureArgs) -> Result<MinHashConfig, Error> {
    let (mut bands, mut rows) = (args.bands, args.rows);
    let (mut max_distance, mut blocks) = (0, 0);
    match args.method {
        Method::Minhash => {}
        // One band holding both halves of the 128-bit hash: equal means equal.
        Method::Exact | Method::ExactRaw => (bands, rows) = (1, 2),
        Method::Simhash => {
            (max_distance, blocks) = (args.max_distance, args.blocks);
            let masks = curate::dedup::simhash::table_masks(blocks, max_distance).map_err(|_| {
                usage(format!("--blocks ({blocks}) must exceed --max-distance ({max_distance}) and be at most 64"))
            })?;
            (bands, rows) = (masks.len(), 2);
        }
    }
    if args.normalize.contains(&NormStep::None) && args.normalize.len() > 1 {
        return Err(usage("--normalize none stands alone"));
    }
    if args.n_grams == 0 || bands == 0 || rows == 0 {
        return Err(usage("--n-grams, --bands and --rows must be at least 1"));
    }
    if bands.checked_mul(rows).is_none_or(|hashes| hashes > MAX_HASHES) {
        return Err(usage(format!("--bands × --rows ({bands} × {rows}) is more than {MAX_HASHES} hash functions")));
    }
    if let Some(threshold) = args.threshold {
        if args.method != Method::Minhash {
            return Err(usage(format!(
                "--threshold chooses MinHash's bands and rows; it does not apply to --method {}",
                args.method.name()
            )));
        }
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(usage(format!("--threshold must lie between 0 and 1, not {threshold}")));
        }
        (bands, rows) = MinHashConfig::for_threshold(threshold, bands * rows);
    }
    Ok(MinHashConfig {
        method: args.method,
        norm: TextNorm::from_steps(&args.normalize),
        shingles: args.shingles,
        n_grams: args.n_grams,
        bands,
        rows,
        seed: args.seed,
        max_distance,
        blocks,
    })
}

fn signatures(args: SignatureArgs, task: Task) -> Result<(), Error> {
    let config = signature_config(&args)?;
    let options = SignatureOptions {
        threads: args.input.threads()?,
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field, raw_text: false },
        work: args.work,
        config,
        priority: args.priority,
        index: args.index,
        task,
        batch_size: args.run.batch_size,
        progress: args.run.progress,
    };
    let report = signatures::run(&options)?;
    for ignored in &report.ignored {
        eprintln!("curate: {ignored}");
    }
    let stats = &report.stats;
    eprintln!(
        "curate: {} signatures ({} bands × {} rows) of {} documents in {} units ({} too short for a signature, {} errors); stats in {}",
        config.method.name(),
        config.bands,
        config.rows,
        stats.signed_docs,
        stats.units,
        stats.short_docs,
        stats.errors.docs,
        report.stats_path.display()
    );
    print_errors(&stats.errors.kinds);
    Ok(())
}

fn buckets(work: &Path, ranges: usize, task: Task, progress: ProgressMode) -> Result<(), Error> {
    if ranges == 0 {
        return Err(usage("--ranges must be at least 1"));
    }
    let stats = buckets::run(work, task, ranges, progress)?;
    let path = work.join("buckets/stats").join(format!("{}.json", task.name()));
    atomic::create_dir(path.parent().expect("a folder"))?;
    atomic::write(&path, &serde_json::to_vec_pretty(&stats).expect("serialisable"))?;
    eprintln!(
        "curate: {} parts of bands: {} signatures, {} edges between documents that share a bucket; stats in {}",
        stats.parts,
        stats.records,
        stats.edges,
        path.display()
    );
    Ok(())
}

fn clusters(work: &Path) -> Result<(), Error> {
    let stats = clusters::run(work)?;
    eprintln!(
        "curate: {} clusters of duplicates hold {} of {} documents; {} of them are to be removed{} ({})",
        stats.clusters,
        stats.clustered_docs,
        stats.documents,
        stats.removed_docs,
        if stats.removed_for_index > 0 {
            format!(", {} for a copy in the index", stats.removed_for_index)
        } else {
            String::new()
        },
        clusters::removals_path(work).display()
    );
    Ok(())
}
