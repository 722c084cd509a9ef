//! The `curate` command line.
//!
//! Exit codes: 0 when the run completed (bad documents skipped under
//! `on_error = "skip"` are counted in stats.json, not failures); 1 when the
//! run stopped on a bad document (`on_error = "fail"`) or could not write;
//! 2 for a bad pipeline file, bad flags or unusable input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use curate::config::Pipeline;
use curate::engine::executor::{self, RunError, RunOptions};
use curate::engine::progress::ProgressMode;
use curate::engine::registry::STEP_TYPES;
use curate::engine::state::RunDir;
use curate::engine::stats::Stats;
use curate::engine::task::Task;

#[derive(Parser)]
#[command(name = "curate", version, about = "Curate text shards into training-ready data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file: read the input, apply the steps, write shards and stats.json.
    ///
    /// Reruns resume: finished units and tasks are skipped, unfinished ones are
    /// redone, and the output is byte-identical to an uninterrupted run.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Read this file, folder or glob instead of the pipeline's input.path.
        #[arg(long)]
        input: Option<String>,
        /// Write to this folder instead of the pipeline's output.path.
        #[arg(long)]
        output: Option<String>,
        /// This task's rank (also SLURM_ARRAY_TASK_ID, SLURM_PROCID or RANK).
        #[arg(long)]
        rank: Option<usize>,
        /// Number of tasks (also SLURM_ARRAY_TASK_COUNT, SLURM_NTASKS or WORLD_SIZE).
        #[arg(long)]
        world_size: Option<usize>,
        /// Worker threads (default: run.threads, else one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Progress display on stderr.
        #[arg(long, value_enum, default_value = "auto")]
        progress: ProgressMode,
    },
    /// Check a pipeline file and print it with its defaults filled in; reads no data.
    Check { pipeline: PathBuf },
    /// Sum the per-task stats of a multi-task run into OUTPUT/stats.json.
    Stats {
        /// The run's output folder.
        output: PathBuf,
        /// The run's number of tasks (default: the one found in OUTPUT/stats/).
        #[arg(long)]
        world_size: Option<usize>,
    },
    /// List the step types a pipeline can use.
    Steps,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { pipeline, input, output, rank, world_size, threads, progress } => {
            run(pipeline, input, output, rank, world_size, threads, progress)
        }
        Command::Check { pipeline } => match Pipeline::load(&pipeline) {
            Ok(p) => {
                println!("{}", serde_json::to_string_pretty(&p).expect("serialisable"));
                ExitCode::SUCCESS
            }
            Err(e) => fatal(e),
        },
        Command::Stats { output, world_size } => stats(output, world_size),
        Command::Steps => {
            for t in STEP_TYPES {
                println!("{:<14} {}", t.name, t.summary);
            }
            ExitCode::SUCCESS
        }
    }
}

fn fatal(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("curate: error: {e}");
    ExitCode::from(2)
}

fn run(
    path: PathBuf,
    input: Option<String>,
    output: Option<String>,
    rank: Option<usize>,
    world_size: Option<usize>,
    threads: Option<usize>,
    progress: ProgressMode,
) -> ExitCode {
    let mut pipeline = match Pipeline::load(&path) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    if let Some(input) = input {
        pipeline.input.path = input;
    }
    if let Some(output) = output {
        pipeline.output.path = output;
    }
    if let Err((key, message)) = pipeline.validate() {
        return fatal(format!("{key}: {message}"));
    }
    let task = match Task::resolve(rank, world_size, |k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => return fatal(e),
    };
    let threads = match threads.or(pipeline.run.threads) {
        Some(0) => return fatal("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let options = RunOptions { task, threads, progress };
    match executor::run(&pipeline, &options) {
        Ok(report) => {
            for path in &report.ignored_files {
                eprintln!("curate: ignored {} (not an input format)", path.display());
            }
            let who = if task.world > 1 { format!("task {} of {}: ", task.rank, task.world) } else { String::new() };
            if report.already_done {
                eprintln!("curate: {who}already complete in {}; nothing to do", pipeline.output.path);
            }
            summarise(&who, &report.task);
            match &report.merged {
                Some((_, path)) => eprintln!("curate: stats in {}", path.display()),
                None => eprintln!(
                    "curate: {who}done; stats.json is written when the last task finishes (or by `curate stats`)"
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e @ (RunError::BadDocument { .. } | RunError::Write { .. } | RunError::Accounting(_))) => {
            eprintln!("curate: error: {e}");
            ExitCode::from(1)
        }
        Err(e) => fatal(e),
    }
}

fn summarise(who: &str, s: &Stats) {
    eprintln!(
        "curate: {who}kept {} of {} documents ({} dropped, {} errors)",
        s.kept_docs, s.input_docs, s.dropped_docs, s.error_docs
    );
    for (kind, occ) in &s.errors {
        eprintln!("curate:   {} {kind}, first at {}", occ.count, occ.examples.first().map_or("?", String::as_str));
    }
}

fn stats(output: PathBuf, world_size: Option<usize>) -> ExitCode {
    if !output.join(".curate").is_dir() {
        return fatal(format!("{} is not the output folder of a curate run", output.display()));
    }
    let run_dir = match RunDir::open(&output) {
        Ok(d) => d,
        Err(e) => return fatal(e),
    };
    let world = match (world_size, run_dir.world_sizes().as_slice()) {
        (Some(w), _) => w,
        (None, [w]) => *w,
        (None, []) => return fatal(format!("no task has finished in {}", output.display())),
        (None, many) => {
            return fatal(format!(
                "tasks of several world sizes ({many:?}) finished in {}; pass --world-size",
                output.display()
            ))
        }
    };
    match run_dir.merged(world) {
        Ok(stats) => {
            if let Err(e) = stats.check() {
                return fatal(format!("stats do not add up: {e}"));
            }
            match run_dir.write_stats(&stats, Task { rank: 0, world }) {
                Ok(path) => {
                    summarise("", &stats);
                    eprintln!("curate: stats in {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fatal(e),
            }
        }
        Err(missing) => {
            eprintln!("curate: error: {} of {world} tasks have not finished: ranks {missing:?}", missing.len());
            ExitCode::from(1)
        }
    }
}
