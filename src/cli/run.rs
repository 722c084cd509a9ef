//! `curate run` and `curate stats`.

use std::path::PathBuf;
use std::process::ExitCode;

use curate::config::Pipeline;
use curate::doc::FieldNames;
use curate::engine::executor::{self, RunError, RunOptions};
use curate::engine::progress::ProgressMode;
use curate::engine::state::RunDir;
use curate::engine::task::Task;
use curate::tokenize::encode::TokenizeOptions;

use super::tokenizer::run_tokenize;
use super::{fatal, summarise, thread_count};

pub fn run(
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
    if let Some(config) = &pipeline.tokenize {
        if let Err(e) = curate::tokenize::encode::check_tokenizer(config) {
            return fatal(format!("{}: tokenize: {e}", path.display()));
        }
    }
    let task = match Task::resolve(rank, world_size, |k| std::env::var(k).ok()) {
        Ok(t) => t,
        Err(e) => return fatal(e),
    };
    let threads = threads.or(pipeline.run.threads);
    if threads == Some(0) {
        return fatal("--threads must be at least 1");
    }
    let threads = thread_count(threads);
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
                None => {
                    eprintln!(
                        "curate: {who}done; stats.json is written when the last task finishes (or by `curate stats`)"
                    );
                    return ExitCode::SUCCESS;
                }
            }
            // The task that completes the run tokenizes its output.
            match pipeline.tokenize {
                Some(config) => {
                    let out = PathBuf::from(&pipeline.output.path);
                    let options = TokenizeOptions {
                        output: config.path.as_ref().map_or_else(|| out.join("tokens"), PathBuf::from),
                        config,
                        input: pipeline.output.path.clone(),
                        names: FieldNames {
                            text: pipeline.input.text_field.clone(),
                            id: pipeline.input.id_field.clone(),
                        },
                        threads,
                        batch_size: pipeline.input.batch_size,
                        progress,
                    };
                    run_tokenize(&options)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e @ (RunError::BadDocument { .. } | RunError::Write { .. } | RunError::Accounting(_))) => {
            eprintln!("curate: error: {e}");
            ExitCode::from(1)
        }
        Err(e) => fatal(e),
    }
}

pub fn stats(output: PathBuf, world_size: Option<usize>) -> ExitCode {
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
