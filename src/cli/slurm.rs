//! `curate slurm`: a pipeline as sbatch job arrays, and `curate status`:
//! where each task of them stands.
//!
//! A pipeline becomes one job array of `--tasks` tasks, each `curate run
//! --rank $SLURM_ARRAY_TASK_ID --world-size N`. A pipeline with a `dedup`
//! step whose work folder holds no clusters yet becomes a chain: the
//! signature array, the bucket array, the cluster job, then the pipeline's
//! array, each submitted with `--dependency=afterok` on the one before.
//! Every task's log goes to one folder (`LOGS/<stage>-<job>_<task>.log`),
//! beside the scripts and `jobs.json`, the record of what was submitted.
//!
//! A task is complete when its marker is there (the same marker a rerun
//! skips on), so a second `curate slurm` submits only the tasks without
//! one, and nothing at all once every stage is complete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use curate::io::atomic;
use curate::pipeline::config::Pipeline;
use serde::{Deserialize, Serialize};

use super::{usage, Error};

#[derive(clap::Args)]
pub struct SlurmArgs {
    /// The pipeline file; its output (a folder, or s3://...) is where the tasks' markers are looked for.
    pub pipeline: PathBuf,
    /// Tasks per array (the world size of every stage but the cluster stage, which is one task).
    #[arg(long)]
    pub tasks: usize,
    #[arg(long)]
    pub partition: Option<String>,
    /// Each task's time limit, as sbatch takes it (e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per task; each task runs that many threads.
    #[arg(long, default_value_t = 1)]
    pub cpus_per_task: usize,
    /// Memory per task, as sbatch takes it (e.g. 8G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Folder for the scripts, the tasks' logs and jobs.json (default: OUTPUT/slurm; required when the output is in an object store).
    #[arg(long)]
    pub logs: Option<PathBuf>,
    /// Extra flags for `curate dedup signatures` in a dedup chain (e.g. "--method exact").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub signature_flags: String,
    /// Print the scripts that would be submitted; submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return only when the last job submitted has ended (sbatch --wait); exit 1 if it failed.
    #[arg(long)]
    pub wait: bool,
}

/// A stage of the chain: its command (with `$RANK` for the array task) and
/// the tasks to run.
struct Stage {
    name: &'static str,
    world: usize,
    /// Where a task's marker is (see [`Submitted::marker`]).
    marker: String,
    /// Tasks without a marker; empty when the stage is complete.
    missing: Vec<usize>,
    /// One task rather than an array.
    single: bool,
    command: Vec<String>,
}

impl Stage {
    /// A stage of `world` tasks (one task, not an array, when `single`),
    /// whose markers at `marker` say which are left to run.
    fn new(
        name: &'static str,
        world: usize,
        single: bool,
        marker: String,
        command: Vec<String>,
    ) -> Result<Stage, Error> {
        let missing = missing(&marker, world)?;
        Ok(Stage { name, world, marker, missing, single, command })
    }
}

/// What `jobs.json` records of one submission.
#[derive(Serialize, Deserialize, Clone)]
struct Submitted {
    stage: String,
    job: String,
    world: usize,
    tasks: Vec<usize>,
    /// Where a task's marker is: a path or address with `{rank}` in it.
    marker: String,
}

const RANK: &str = "${SLURM_ARRAY_TASK_ID}";

pub fn slurm(args: SlurmArgs) -> Result<ExitCode, Error> {
    if args.tasks == 0 {
        return Err(usage("--tasks must be at least 1"));
    }
    let (pipeline, dedup_work) = load(&args.pipeline)?;
    let output = pipeline.output.path.clone();
    let logs = logs_folder(args.logs.as_deref(), &output)?;
    let exe = std::env::current_exe().map_err(|e| usage(format!("cannot find the curate executable: {e}")))?;
    let exe = exe.to_string_lossy().into_owned();
    let pipeline_path = std::path::absolute(&args.pipeline).unwrap_or(args.pipeline.clone());
    let threads = args.cpus_per_task.to_string();
    let world = args.tasks.to_string();
    let mut stages = Vec::new();
    if let Some(work) = dedup_work {
        if !Path::new(&work).join("clusters/stats.json").is_file() {
            let mut signatures = vec![exe.clone(), "dedup".into(), "signatures".into()];
            signatures.extend(["--input", pipeline.input.path.as_str(), "--work", work.as_str()].map(String::from));
            signatures.extend(args.signature_flags.split_whitespace().map(String::from));
            signatures.extend(
                ["--rank", RANK, "--world-size", &world, "--threads", &threads, "--progress", "none"].map(String::from),
            );
            let done = marker(&work, "signatures/stats", args.tasks);
            stages.push(Stage::new("signatures", args.tasks, false, done, signatures)?);
            let buckets =
                ["dedup", "buckets", "--work", &work, "--rank", RANK, "--world-size", &world, "--progress", "none"];
            let buckets = std::iter::once(exe.clone()).chain(buckets.map(String::from)).collect();
            stages.push(Stage::new("buckets", args.tasks, false, marker(&work, "buckets/stats", args.tasks), buckets)?);
            let clusters = [exe.as_str(), "dedup", "clusters", "--work", &work].map(String::from).to_vec();
            stages.push(Stage::new("clusters", 1, true, format!("{work}/clusters/stats.json"), clusters)?);
        }
    }
    let pipeline_path = pipeline_path.to_string_lossy().into_owned();
    let run = [exe.as_str(), "run", &pipeline_path, "--rank", RANK, "--world-size", &world];
    let mut run: Vec<String> = run.map(String::from).to_vec();
    run.extend(["--threads", &threads, "--progress", "none"].map(String::from));
    stages.push(Stage::new("run", args.tasks, false, marker(&output, "stats", args.tasks), run)?);
    // Once a stage has work to do, every stage after it runs again too
    // (each skips what it finds done), after it.
    let first = stages.iter().position(|s| !s.missing.is_empty());
    let Some(first) = first else {
        eprintln!("curate: every task of {} is complete; nothing to submit", args.pipeline.display());
        return Ok(ExitCode::SUCCESS);
    };
    let cwd = std::env::current_dir().map_err(|e| usage(format!("cannot read the current folder: {e}")))?;
    let mut previous: Option<String> = None;
    let mut record = read_jobs(&logs);
    let last = stages.len() - 1;
    for (i, stage) in stages.iter_mut().enumerate().skip(first) {
        if stage.missing.is_empty() {
            stage.missing = (0..stage.world).collect();
        }
        let script = script(stage, &args, &logs, &cwd);
        if args.dry_run {
            let after = if i > first { " (after the one above succeeds)" } else { "" };
            println!("# {}: {}{after}\n{script}", stage.name, describe(&stage.missing, stage.world));
            continue;
        }
        atomic::create_dir(&logs)?;
        let path = logs.join(format!("{}.sbatch", stage.name));
        atomic::write(&path, script.as_bytes())?;
        let mut sbatch = Command::new("sbatch");
        sbatch.arg("--parsable");
        if let Some(job) = &previous {
            sbatch.arg(format!("--dependency=afterok:{job}")).arg("--kill-on-invalid-dep=yes");
        }
        if args.wait && i == last {
            sbatch.arg("--wait");
        }
        let out = sbatch.arg(&path).output().map_err(|e| usage(format!("cannot run sbatch: {e}")))?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let job = said.split(';').next().unwrap_or("").to_owned();
        // With --wait, sbatch's own status is the job's: a failed job is told below.
        let waited = args.wait && i == last;
        if job.is_empty() || !(out.status.success() || waited) {
            return Err(Error::Unfinished(format!(
                "sbatch refused {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        eprintln!("curate: submitted {} as job {job}: {}", stage.name, describe(&stage.missing, stage.world));
        record.push(Submitted {
            stage: stage.name.into(),
            job: job.clone(),
            world: stage.world,
            tasks: stage.missing.clone(),
            marker: stage.marker.clone(),
        });
        atomic::write(&logs.join("jobs.json"), &serde_json::to_vec_pretty(&record).expect("serialisable"))?;
        if waited && !out.status.success() {
            return Err(Error::Unfinished(format!(
                "job {job} ({}) failed; `curate status {output} --logs {}` shows which tasks, and why",
                stage.name,
                logs.display()
            )));
        }
        previous = Some(job);
    }
    if !args.dry_run {
        let flag = match &args.logs {
            Some(_) => format!(" --logs {}", logs.display()),
            None => String::new(),
        };
        eprintln!("curate: logs in {}; `curate status {output}{flag}` shows each task", logs.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The folder of the scripts, logs and jobs.json.
fn logs_folder(logs: Option<&Path>, output: &str) -> Result<PathBuf, Error> {
    match (logs, curate_store::is_remote(output)) {
        (Some(logs), _) => Ok(std::path::absolute(logs).unwrap_or(logs.to_owned())),
        (None, false) => Ok(std::path::absolute(Path::new(output).join("slurm")).unwrap_or_default()),
        (None, true) => Err(usage(format!(
            "--logs: the output {output} is in an object store; name a folder on the cluster's shared storage for the logs"
        ))),
    }
}

/// The pipeline, checked, and the work folder of its `dedup` step if it
/// has one. A dedup step checks the stages in its work folder, which the
/// chain is about to run: it is left out of the check here, and checked
/// when its tasks run.
fn load(path: &Path) -> Result<(Pipeline, Option<String>), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| usage(format!("{}: {}", path.display(), e.message())))?;
    let mut work = None;
    if let Some(toml::Value::Array(steps)) = table.get_mut("step") {
        let is_dedup = |s: &toml::Value| s.get("type").and_then(|t| t.as_str()) == Some("dedup");
        work = steps.iter().find(|s| is_dedup(s)).and_then(|s| s.get("work")?.as_str().map(String::from));
        steps.retain(|s| !is_dedup(s));
    }
    let pipeline = Pipeline::parse(&toml::to_string(&table).expect("a table serialises"), &path.display().to_string())?;
    pipeline.validate()?;
    Ok((pipeline, work))
}

/// Where task `{rank}` of `world` leaves its marker under `folder/sub`.
fn marker(folder: &str, sub: &str, world: usize) -> String {
    format!("{}/{sub}/rank-{{rank}}-of-{world:05}.json", folder.trim_end_matches('/'))
}

fn marker_of(marker: &str, rank: usize) -> String {
    marker.replace("{rank}", &format!("{rank:05}"))
}

/// The tasks whose markers are not there.
fn missing(marker: &str, world: usize) -> Result<Vec<usize>, Error> {
    let present = present(marker, world)?;
    Ok((0..world).filter(|r| !present.contains(r)).collect())
}

/// The tasks whose markers are there: files, or objects (one listing).
fn present(marker: &str, world: usize) -> Result<BTreeSet<usize>, Error> {
    if !marker.contains("{rank}") {
        let there = match curate_store::is_remote(marker) {
            true => {
                let (bucket, key) = curate_store::Bucket::open(marker)?;
                bucket.head(&key)?.is_some()
            }
            false => Path::new(marker).is_file(),
        };
        return Ok(if there { BTreeSet::from([0]) } else { BTreeSet::new() });
    }
    if !curate_store::is_remote(marker) {
        return Ok((0..world).filter(|&r| Path::new(&marker_of(marker, r)).is_file()).collect());
    }
    let folder = marker.rsplit_once('/').map_or(marker, |(f, _)| f);
    let (bucket, prefix) = curate_store::Bucket::open(folder)?;
    let keys: BTreeSet<String> = bucket.list(&prefix)?.into_iter().map(|o| bucket.url(&o.key)).collect();
    Ok((0..world).filter(|&r| keys.contains(&marker_of(marker, r))).collect())
}

/// `tasks 0-3 of 4`, `tasks 2, 5 of 8`, `one task`.
fn describe(tasks: &[usize], world: usize) -> String {
    match world {
        1 => "one task".into(),
        _ => format!("tasks {} of {world}", compact(tasks).replace(',', ", ")),
    }
}

/// Task numbers as sbatch's --array takes them: `0-3,6,8-9`.
fn compact(tasks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { tasks[i].to_string() } else { format!("{}-{}", tasks[i], tasks[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn quote(word: &str) -> String {
    if word == RANK || (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c)))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn script(stage: &Stage, args: &SlurmArgs, logs: &Path, cwd: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=curate-{}\n", stage.name);
    if stage.single {
        s += &format!("#SBATCH --output={}/{}-%j.log\n", logs.display(), stage.name);
    } else {
        s += &format!("#SBATCH --array={}\n", compact(&stage.missing));
        s += &format!("#SBATCH --output={}/{}-%A_%a.log\n", logs.display(), stage.name);
    }
    s += "#SBATCH --ntasks=1\n";
    s += &format!("#SBATCH --cpus-per-task={}\n", args.cpus_per_task);
    s += &format!("#SBATCH --chdir={}\n", cwd.display());
    for (flag, value) in [("partition", &args.partition), ("time", &args.time), ("mem", &args.mem)] {
        if let Some(v) = value {
            s += &format!("#SBATCH --{flag}={v}\n");
        }
    }
    s += "set -euo pipefail\n";
    if stage.single {
        s += "SLURM_ARRAY_TASK_ID=0\n";
    }
    s += "exec";
    for word in &stage.command {
        s += " ";
        s += &quote(word);
    }
    s += "\n";
    s
}

fn read_jobs(logs: &Path) -> Vec<Submitted> {
    std::fs::read(logs.join("jobs.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The output folder (or s3://...) of a pipeline submitted with `curate slurm`.
    pub output: String,
    /// The --logs folder given to `curate slurm` (default: OUTPUT/slurm).
    #[arg(long)]
    pub logs: Option<PathBuf>,
}

/// Prints, per stage, how many tasks are done, pending, running and
/// failed (neither done nor in the queue any more, with the last line of
/// the log); exits 1 when a task failed.
pub fn status(args: StatusArgs) -> Result<ExitCode, Error> {
    let logs = logs_folder(args.logs.as_deref(), &args.output)?;
    let jobs = read_jobs(&logs);
    if jobs.is_empty() {
        return Err(usage(format!(
            "no jobs.json in {}: nothing was submitted with `curate slurm` there",
            logs.display()
        )));
    }
    let queued = queue_states(&jobs);
    // The latest submission of each stage, in the order stages were first submitted.
    let mut order: Vec<String> = Vec::new();
    let mut latest: BTreeMap<String, Vec<&Submitted>> = BTreeMap::new();
    for job in &jobs {
        if !order.contains(&job.stage) {
            order.push(job.stage.clone());
        }
        latest.entry(job.stage.clone()).or_default().push(job);
    }
    let mut failed_any = false;
    for stage in &order {
        let submissions = &latest[stage];
        let last = submissions.last().expect("a submission");
        let done = present(&last.marker, last.world)?;
        let (mut pending, mut running, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for rank in (0..last.world).filter(|r| !done.contains(r)) {
            // The latest submission that ran this task.
            let Some(job) = submissions.iter().rev().find(|s| s.tasks.contains(&rank)) else { continue };
            match queued.get(&(job.job.clone(), rank)).map(String::as_str) {
                Some("PENDING") => pending.push(rank),
                Some(_) => running.push(rank),
                None => failed.push((rank, job)),
            }
        }
        println!(
            "{stage}: {} of {} done, {} pending, {} running, {} failed",
            done.len(),
            last.world,
            pending.len(),
            running.len(),
            failed.len()
        );
        for (rank, job) in &failed {
            failed_any = true;
            let log = match job.world {
                1 => logs.join(format!("{stage}-{}.log", job.job)),
                _ => logs.join(format!("{stage}-{}_{rank}.log", job.job)),
            };
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last_line = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.contains(" s, peak memory "))
                .unwrap_or("(no log)");
            println!("  task {rank} (job {}): {}: {last_line}", job.job, log.display());
        }
    }
    Ok(if failed_any { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The queue's state of each (job, array task) still in it.
fn queue_states(jobs: &[Submitted]) -> BTreeMap<(String, usize), String> {
    let ids: BTreeSet<&str> = jobs.iter().map(|j| j.job.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let out = Command::new("squeue").args(["-h", "-r", "-o", "%F %K %T", "-j", &ids.join(",")]).output();
    let mut states = BTreeMap::new();
    let Ok(out) = out else { return states };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [job, task, state] = parts[..] {
            states.insert((job.to_owned(), task.parse().unwrap_or(0)), state.to_owned());
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lists_are_written_as_sbatch_ranges() {
        assert_eq!(compact(&[0, 1, 2, 3]), "0-3");
        assert_eq!(compact(&[2, 5, 6, 9]), "2,5-6,9");
        assert_eq!(compact(&[7]), "7");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(RANK), RANK);
    }
}
