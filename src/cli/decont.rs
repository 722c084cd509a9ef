//! `curate decont index`: the n-gram index of benchmark items that the
//! `decontaminate` step reads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use curate::decont::index::{hashes_bytes, task_file, Builder, IndexConfig, META_FILE, SUFFIX};
use curate::io::atomic;
use serde_json::Value;

use super::{usage, Error};

#[derive(Subcommand)]
pub enum DecontCommand {
    /// Hash the n-grams of benchmark items (JSON Lines: answer, question, task) into an index folder.
    Index(DecontIndexArgs),
}

#[derive(clap::Args)]
pub struct DecontIndexArgs {
    /// Benchmark files (JSON Lines, plain, .gz or .zst; globs allowed), one item a line.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<String>,
    /// The index folder.
    #[arg(long)]
    pub output: PathBuf,
    /// The field of the gold answer: a string, or a list of them (each indexed with the question).
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The field of the question (prompt); needed unless only answers are indexed.
    #[arg(long, default_value = "query")]
    pub query_field: String,
    /// The field naming the benchmark; items without it are the task `input`, as datatrove names them.
    #[arg(long, default_value = "task")]
    pub task_field: String,
    /// Words per n-gram.
    #[arg(long, default_value_t = curate::decont::DEFAULT_N)]
    pub n: usize,
    /// Also index n-grams of the question alone.
    #[arg(long)]
    pub find_query_ngrams: bool,
    /// Do not index n-grams that span the end of the question and the start of the answer.
    #[arg(long)]
    pub no_overlap_ngrams: bool,
}

pub fn decont(command: DecontCommand) -> Result<ExitCode, Error> {
    match command {
        DecontCommand::Index(args) => index(args),
    }
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, Error> {
    let file = std::fs::File::open(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let name = path.to_string_lossy();
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::Decoder::new(file).map_err(|e| usage(format!("{}: {e}", path.display())))?)
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(reader)))
}

fn index(args: DecontIndexArgs) -> Result<ExitCode, Error> {
    if args.n == 0 {
        return Err(usage("--n must be at least 1"));
    }
    let config = IndexConfig {
        n: args.n,
        find_query_ngrams: args.find_query_ngrams,
        find_overlap_ngrams: !args.no_overlap_ngrams,
    };
    let mut files = Vec::new();
    for pattern in &args.input {
        let matched: Vec<PathBuf> = glob::glob(pattern)
            .map_err(|e| usage(format!("--input {pattern:?}: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if matched.is_empty() {
            return Err(usage(format!("--input {pattern:?}: no such file")));
        }
        files.extend(matched);
    }
    let mut builder = Builder::default();
    let mut items = BTreeMap::<String, u64>::new();
    for path in &files {
        for (i, line) in open(path)?.lines().enumerate() {
            let at = || format!("{}:{}", path.display(), i + 1);
            let line = line.map_err(|e| usage(format!("{}: {e}", at())))?;
            if line.trim().is_empty() {
                continue;
            }
            let item: Value = serde_json::from_str(&line).map_err(|e| usage(format!("{}: {e}", at())))?;
            let task = match item.get(&args.task_field) {
                None | Some(Value::Null) => "input",
                Some(Value::String(task)) => task.as_str(),
                Some(_) => return Err(usage(format!("{}: `{}` is not a string", at(), args.task_field))),
            };
            let query = match item.get(&args.query_field) {
                None | Some(Value::Null) if !config.find_query_ngrams => {
                    // datatrove refuses this too: without the question only
                    // answers could be indexed, which is not what was asked.
                    return Err(usage(format!(
                        "{}: no `{}` (the question); every item needs one unless --find-query-ngrams",
                        at(),
                        args.query_field
                    )));
                }
                None | Some(Value::Null) => None,
                Some(Value::String(query)) => Some(query.as_str()),
                Some(_) => return Err(usage(format!("{}: `{}` is not a string", at(), args.query_field))),
            };
            let labels: Vec<&str> = match item.get(&args.text_field) {
                Some(Value::String(label)) => vec![label.as_str()],
                Some(Value::Array(labels)) if labels.iter().all(Value::is_string) => {
                    labels.iter().filter_map(Value::as_str).collect()
                }
                _ => {
                    return Err(usage(format!(
                        "{}: `{}` (the answer) is not a string or a list of strings",
                        at(),
                        args.text_field
                    )))
                }
            };
            for label in labels {
                builder.add(&config, task, label, query);
            }
            *items.entry(task.to_owned()).or_default() += 1;
        }
    }
    std::fs::create_dir_all(&args.output).map_err(|e| usage(format!("{}: {e}", args.output.display())))?;
    let ours: Vec<String> = builder.tasks.keys().map(|t| task_file(t)).collect();
    for entry in std::fs::read_dir(&args.output).map_err(|e| usage(format!("{}: {e}", args.output.display())))? {
        let name = entry.map_err(|e| usage(e.to_string()))?.file_name().to_string_lossy().into_owned();
        if name.ends_with(SUFFIX) && !ours.contains(&name) {
            return Err(usage(format!(
                "{}: holds {name}, a task these benchmarks do not have; give an empty folder",
                args.output.display()
            )));
        }
    }
    let mut counts = serde_json::Map::new();
    for (task, hashes) in &builder.tasks {
        atomic::write(&args.output.join(task_file(task)), &hashes_bytes(hashes))?;
        counts.insert(task.clone(), serde_json::json!({"items": items[task], "ngrams": hashes.len()}));
        eprintln!("curate: {task}: {} items, {} n-grams", items[task], hashes.len());
    }
    let mut meta = serde_json::to_value(config).expect("serialisable");
    meta["tasks"] = Value::Object(counts);
    atomic::write(
        &args.output.join(META_FILE),
        (serde_json::to_string_pretty(&meta).expect("serialisable") + "\n").as_bytes(),
    )?;
    eprintln!("curate: wrote the index of {} task(s) to {}", builder.tasks.len(), args.output.display());
    Ok(ExitCode::SUCCESS)
}
