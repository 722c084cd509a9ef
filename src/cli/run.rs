//! `curate run` and `curate stats`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use curate::io::doc::FieldNames;
use curate::io::plan::resolved;
use curate::pipeline::config::Pipeline;
use curate::pipeline::executor::{self, RunError, RunOptions, TaskReport};
use curate::pipeline::stats::Stats;
use curate::runtime::options::BadValue;
use curate::runtime::progress::ProgressMode;
use curate::runtime::task::Task;
use curate::stage::StageStats;
use curate::tokenize::encode::TokenizeOptions;
use curate::tokenize::TokenizeConfig;

use super::remote::stage_if_remote;
use super::tokenizer::run_tokenize;
use super::{summarise, threads, Error};

pub fn run(
    path: PathBuf,
    input: Option<String>,
    output: Option<String>,
    rank: Option<usize>,
    world_size: Option<usize>,
    threads_flag: Option<usize>,
    progress: ProgressMode,
) -> Result<ExitCode, Error> {
    let mut pipeline = Pipeline::load(&path)?;
    if let Some(input) = input {
        pipeline.input.path = input;
    }
    if let Some(output) = output {
        pipeline.output.path = output;
    }
    pipeline.validate()?;
    let task = Task::resolve(rank, world_size, |k| std::env::var(k).ok())?;
    // An output in an object store is written through a local staging folder.
    let url = pipeline.output.path.clone();
    if curate_store::is_remote(&url) {
        refuse_remote_output_in_input(&pipeline.input.path, &url)?;
        if pipeline.tokenize.as_ref().is_some_and(|t| t.path.is_some()) {
            return Err(BadValue::new(
                "tokenize.path",
                "with an output in an object store, the token shards go to tokens/ in it; leave tokenize.path out",
            )
            .into());
        }
    }
    let (local, staged) = stage_if_remote(&url, &task.name(), Some(task))?;
    pipeline.output.path = local;
    let out = PathBuf::from(&pipeline.output.path);
    if let Some(config) = &pipeline.tokenize {
        // Checked before the run, which may take hours: not after it.
        curate::tokenize::encode::check_tokenizer(config)
            .map_err(|source| Error::PipelineTokenizer { file: path.clone(), source })?;
        let tokens = tokens_folder(config, &out);
        curate::io::plan::refuse_output_in_input(&pipeline.input.path, &tokens)?;
        if resolved(&tokens) == resolved(&out) {
            return Err(BadValue::new(
                "tokenize.path",
                format!(
                    "{} is the output folder; the token shards' stats.json and manifest would take the run's place",
                    tokens.display()
                ),
            )
            .into());
        }
    }
    let threads = threads(threads_flag.or(pipeline.run.threads))?;
    let mut report = executor::run(&pipeline, &RunOptions { task, threads, progress })?;
    if let Some(staged) = &staged {
        staged.complete_run(&pipeline, &mut report, task)?;
    }
    let complete = print_report(&report, task, &url);
    let tokenized = match (complete, pipeline.tokenize) {
        // The task that completes the run tokenizes its output (from the
        // store, where its shards are).
        (true, Some(config)) => {
            let shown = tokens_folder(&config, Path::new(&url));
            let options = TokenizeOptions {
                output: tokens_folder(&config, &out),
                config,
                input: url.clone(),
                names: FieldNames {
                    text: pipeline.input.text_field.clone(),
                    id: pipeline.input.id_field.clone(),
                    raw_text: false,
                },
                threads,
                batch_size: pipeline.input.batch_size,
                progress,
            };
            run_tokenize(&options, &shown)?
        }
        _ => ExitCode::SUCCESS,
    };
    if let Some(staged) = staged {
        staged.finish()?;
    }
    Ok(tokenized)
}

/// Refuses an output in the store under the input's prefix, which the next
/// run over the input would read back.
fn refuse_remote_output_in_input(input: &str, output: &str) -> Result<(), Error> {
    let root = input.split(['*', '?', '[']).next().unwrap_or(input).trim_end_matches('/');
    match output.trim_end_matches('/').strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Err(Error::Usage(format!(
            "the output {output} is inside the input {input}; the next run would read its own output"
        ))),
        _ => Ok(()),
    }
}

/// Tells what a task of a run did (what the input holds that was not read,
/// whether it had finished before, its counts and where the stats are);
/// true when the whole run is complete.
pub fn print_report(report: &TaskReport, task: Task, output: &str) -> bool {
    for ignored in &report.ignored {
        eprintln!("curate: {ignored}");
    }
    let who = if task.world > 1 { format!("task {} of {}: ", task.rank, task.world) } else { String::new() };
    if report.already_done {
        eprintln!("curate: {who}already complete in {output}; nothing to do");
    }
    summarise(&who, &report.task);
    match &report.merged {
        Some(_) => eprintln!("curate: stats in {}/stats.json", output.trim_end_matches('/')),
        None => {
            eprintln!("curate: {who}done; stats.json is written when the last task finishes (or by `curate stats`)")
        }
    }
    report.merged.is_some()
}

/// Where a pipeline's token shards go: `[tokenize] path`, by default `tokens/`
/// in the output folder.
fn tokens_folder(config: &TokenizeConfig, out: &Path) -> PathBuf {
    config.path.as_ref().map_or_else(|| out.join("tokens"), PathBuf::from)
}

pub fn stats(output: PathBuf, world_size: Option<usize>) -> Result<ExitCode, Error> {
    let (local, staged) = stage_if_remote(&output.to_string_lossy(), "stats", None)?;
    let merged = merge_stats(Path::new(&local), &output, world_size);
    if let Some(staged) = staged {
        staged.finish()?;
    }
    merged
}

fn merge_stats(output: &Path, shown: &Path, world_size: Option<usize>) -> Result<ExitCode, Error> {
    if !output.join(".curate").is_dir() {
        return Err(Error::Usage(format!("{} is not the output folder of a curate run", shown.display())));
    }
    if world_size == Some(0) {
        return Err(Error::Usage("--world-size must be at least 1".into()));
    }
    let dir = executor::run_dir(output);
    let world = match (world_size, dir.world_sizes().as_slice()) {
        (Some(w), _) => w,
        (None, [w]) => *w,
        (None, []) => return Err(Error::Usage(format!("no task has finished in {}", shown.display()))),
        (None, many) => {
            return Err(Error::Usage(format!(
                "tasks of several world sizes ({many:?}) finished in {}; pass --world-size",
                shown.display()
            )))
        }
    };
    let stats: Stats = dir.merged(world).map_err(|missing| {
        Error::Unfinished(format!("{} of {world} tasks have not finished: ranks {missing:?}", missing.len()))
    })?;
    stats.check().map_err(RunError::from)?;
    executor::write_merged(output, &stats, Task { rank: 0, world })?;
    summarise("", &stats);
    eprintln!("curate: stats in {}", shown.join("stats.json").display());
    Ok(ExitCode::SUCCESS)
}
