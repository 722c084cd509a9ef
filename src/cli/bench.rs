//! `curate bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use curate::io::doc::FieldNames;
use curate::pipeline::bench::{self, DEFAULT_STEPS};
use curate::pipeline::config::Pipeline;

use super::{threads, usage, Error};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A file, folder or glob of JSON Lines or Parquet documents.
    pub input: String,
    /// Measure the steps of this pipeline file (default: the quality filters with their defaults).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// At most this many documents are read into memory.
    #[arg(long, default_value_t = 100_000)]
    pub max_docs: usize,
    /// At most this many megabytes of text are read into memory.
    #[arg(long, default_value_t = 200)]
    pub max_mb: usize,
    /// Threads for the all-cores rows (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode, Error> {
    let specs = match &args.pipeline {
        Some(path) => Pipeline::load(path)?.steps,
        None => {
            let text = DEFAULT_STEPS.iter().map(|t| format!("[[step]]\ntype = \"{t}\"\n")).collect::<String>();
            let toml = format!("[input]\npath = \"-\"\n[output]\npath = \"-\"\n{text}");
            Pipeline::parse(&toml, "(default steps)").expect("the default steps are valid").steps
        }
    };
    if specs.is_empty() {
        return Err(usage("the pipeline has no steps to measure"));
    }
    let threads = threads(args.threads)?;
    let plan = curate::io::plan::plan(&args.input, None, u64::MAX)?;
    let names = FieldNames { text: args.text_field, id: "id".into(), raw_text: false };
    let docs = bench::load(&plan, names, args.max_docs, args.max_mb << 20);
    if docs.is_empty() {
        return Err(usage(format!("no documents in {}", args.input)));
    }
    let rows = bench::bench(&specs, &docs, threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("serialisable"));
    } else {
        let mb: usize = docs.iter().map(|d| d.text.len()).sum();
        println!("{} documents, {:.1} MB of text\n", docs.len(), mb as f64 / 1e6);
        print!("{}", bench::table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
