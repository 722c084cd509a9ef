//! `curate dedup`: the stages of duplicate detection (`signatures`,
//! `buckets`, `clusters`, or `all` of them locally; the `dedup` step is the
//! fourth) and the line counts of line-level dedup (`lines`; the
//! `line_dedup` step uses them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use curate::dedup::lines::{self, LineCountOptions};
use curate::dedup::minhash::{Method, MinHashConfig, Shingles};
use curate::dedup::normalize::{NormStep, TextNorm};
use curate::dedup::signatures::{self, SignatureOptions};
use curate::dedup::{buckets, clusters};
use curate::doc::FieldNames;
use curate::engine::progress::ProgressMode;
use curate::engine::task::Task;
use curate::io::atomic;

use super::{fatal, print_errors, thread_count, InputArgs};

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
        #[arg(long, value_enum, default_value = "auto")]
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
    #[arg(long, value_enum, default_value = "auto")]
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
    #[arg(long, value_enum, default_value = "minhash")]
    pub method: Method,
    /// Normalisation steps before hashing (datatrove's TextNormConfig): any of lowercase, whitespace, punctuation, diacritics, numbers, weekdays, months; or none.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lowercase,whitespace,punctuation,diacritics,numbers"
    )]
    pub normalize: Vec<NormStep>,
    /// What a shingle is: n consecutive words (datatrove's choice) or n consecutive characters of the normalised text.
    #[arg(long, value_enum, default_value = "words")]
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

pub fn dedup(command: DedupCommand) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let done = match command {
        DedupCommand::Signatures(args) => {
            Task::resolve(args.run.rank, args.run.world_size, env).and_then(|task| signatures(args, task))
        }
        DedupCommand::Buckets { work, ranges, rank, world_size, progress } => {
            Task::resolve(rank, world_size, env).and_then(|task| buckets(&work, ranges, task, progress))
        }
        DedupCommand::Clusters { work } => clusters(&work),
        DedupCommand::Lines(args) => lines(args),
        DedupCommand::All { signatures: args, ranges } => all(args, ranges),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal(e),
    }
}

/// The three stages in turn, each as the only task (whatever a launcher's
/// variables say: this command is the local run).
fn all(args: SignatureArgs, ranges: usize) -> Result<(), String> {
    if args.run.rank.is_some() || args.run.world_size.is_some() {
        return Err("`curate dedup all` runs every stage as one task; run the stages one by one to share them \
                    between tasks (--rank, --world-size)"
            .into());
    }
    let work = args.work.clone();
    let progress = args.run.progress;
    let one = Task { rank: 0, world: 1 };
    signatures(args, one)?;
    buckets(&work, ranges, one, progress)?;
    clusters(&work)?;
    eprintln!(
        "curate: dedup ready; a pipeline step [[step]] type = \"dedup\" work = \"{}\" removes the duplicates",
        work.display()
    );
    Ok(())
}

fn lines(args: LineArgs) -> Result<(), String> {
    let task = Task::resolve(args.run.rank, args.run.world_size, |k| std::env::var(k).ok())?;
    if args.input.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let options = LineCountOptions {
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field },
        work: args.work,
        task,
        threads: thread_count(args.input.threads),
        batch_size: args.run.batch_size,
        progress: args.run.progress,
    };
    let stats = lines::run(&options)?;
    let path = options.work.join("lines/stats").join(format!("rank-{:05}-of-{:05}.json", task.rank, task.world));
    std::fs::create_dir_all(path.parent().expect("a folder"))
        .and_then(|_| atomic::write(&path, &serde_json::to_vec_pretty(&stats).expect("serialisable")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "curate: {} lines of {} documents in {} units ({} done before), {} distinct per unit summed, {} errors; stats in {}",
        stats.lines,
        stats.docs,
        stats.units,
        stats.skipped_units,
        stats.distinct_lines,
        stats.error_docs,
        path.display()
    );
    print_errors(&stats.errors);
    Ok(())
}

fn signatures(args: SignatureArgs, task: Task) -> Result<(), String> {
    let (mut bands, mut rows) = (args.bands, args.rows);
    let (mut max_distance, mut blocks) = (0, 0);
    match args.method {
        Method::Minhash => {}
        // One band holding both halves of the 128-bit hash: equal means equal.
        Method::Exact | Method::ExactRaw => (bands, rows) = (1, 2),
        Method::Simhash => {
            if !(args.max_distance < args.blocks && args.blocks <= 64) {
                return Err(format!(
                    "--blocks ({}) must exceed --max-distance ({}) and be at most 64",
                    args.blocks, args.max_distance
                ));
            }
            (max_distance, blocks) = (args.max_distance, args.blocks);
            (bands, rows) = (curate::dedup::simhash::table_masks(blocks, max_distance).len(), 2);
        }
    }
    if args.normalize.contains(&NormStep::None) && args.normalize.len() > 1 {
        return Err("--normalize none stands alone".into());
    }
    let norm = TextNorm::from_steps(&args.normalize);
    if args.n_grams == 0 || bands == 0 || rows == 0 {
        return Err("--n-grams, --bands and --rows must be at least 1".into());
    }
    if let Some(threshold) = args.threshold {
        if args.method != Method::Minhash {
            return Err(format!(
                "--threshold chooses MinHash's bands and rows; it does not apply to --method {}",
                args.method.name()
            ));
        }
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(format!("--threshold must lie between 0 and 1, not {threshold}"));
        }
        (bands, rows) = MinHashConfig::for_threshold(threshold, bands * rows);
    }
    if args.input.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    let options = SignatureOptions {
        input: args.input.input,
        names: FieldNames { text: args.input.text_field, id: args.input.id_field },
        work: args.work,
        config: MinHashConfig {
            method: args.method,
            norm,
            shingles: args.shingles,
            n_grams: args.n_grams,
            bands,
            rows,
            seed: args.seed,
            max_distance,
            blocks,
        },
        priority: args.priority,
        index: args.index,
        task,
        threads: thread_count(args.input.threads),
        batch_size: args.run.batch_size,
        progress: args.run.progress,
    };
    let stats = signatures::run(&options)?;
    let path = options.work.join("signatures/stats").join(format!("rank-{:05}-of-{:05}.json", task.rank, task.world));
    let text = serde_json::to_string_pretty(&stats).expect("serialisable");
    std::fs::create_dir_all(path.parent().expect("a folder"))
        .and_then(|_| atomic::write(&path, text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "curate: {} signatures ({bands} bands × {rows} rows) of {} documents in {} units ({} too short for a signature, {} errors); stats in {}",
        options.config.method.name(),
        stats.signed_docs,
        stats.units,
        stats.short_docs,
        stats.error_docs,
        path.display()
    );
    print_errors(&stats.errors);
    Ok(())
}

fn buckets(work: &Path, ranges: usize, task: Task, progress: ProgressMode) -> Result<(), String> {
    if ranges == 0 {
        return Err("--ranges must be at least 1".into());
    }
    let stats = buckets::run(work, task, ranges, progress)?;
    let path = work.join("buckets/stats").join(format!("rank-{:05}-of-{:05}.json", task.rank, task.world));
    std::fs::create_dir_all(path.parent().expect("a folder"))
        .and_then(|_| atomic::write(&path, &serde_json::to_vec_pretty(&stats).expect("serialisable")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "curate: {} parts of bands: {} signatures, {} edges between documents that share a bucket; stats in {}",
        stats.parts,
        stats.records,
        stats.edges,
        path.display()
    );
    Ok(())
}

fn clusters(work: &Path) -> Result<(), String> {
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
