//! `curate select`: keeps the documents of annotated output for which a
//! SQL-style condition over their fields holds, as `curate run` would
//! with a step that drops the others for the reason `select`.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use curate::pipeline::config::{OutputFormat, Pipeline, StepMode, StepSpec};
use curate::pipeline::executor::{self, RunOptions};
use curate::runtime::progress::ProgressMode;
use curate::runtime::task::Task;
use curate::step::{Condition, FieldsSample, InputMismatch, JudgeError, SelectStep, Step};
use curate_query::{Predicate, Typed};

use super::remote::stage_if_remote;
use super::run::print_report;
use super::{named, threads, usage, Error};

#[derive(clap::Args)]
pub struct SelectArgs {
    /// Annotated output (or any JSON Lines or Parquet): a file, folder or glob.
    pub input: String,
    /// The condition, in SQL: `"quality.words" >= 80 AND language = 'en'`
    /// (double quotes around field names with dots or capitals).
    #[arg(long = "where")]
    pub condition: String,
    /// The output folder: shards and stats.json, as `curate run` writes them.
    #[arg(long)]
    pub output: String,
    #[arg(long, value_parser = named::<OutputFormat>(), default_value = "parquet")]
    pub format: OutputFormat,
    /// Also write the documents left out to OUTPUT/rejected/.
    #[arg(long)]
    pub rejected: bool,
    #[arg(long, default_value = "text")]
    pub text_field: String,
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// This task's rank (also SLURM_ARRAY_TASK_ID, SLURM_PROCID or RANK).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Number of tasks (also SLURM_ARRAY_TASK_COUNT, SLURM_NTASKS or WORLD_SIZE).
    #[arg(long)]
    pub world_size: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_parser = named::<ProgressMode>(), default_value = "auto")]
    pub progress: ProgressMode,
}

pub fn select(args: SelectArgs) -> Result<ExitCode, Error> {
    let predicate = Predicate::parse(&args.condition).map_err(|e| usage(e.to_string()))?;
    let mut pipeline = select_pipeline(&args.input, &args.output, &args.text_field, &args.id_field)?;
    pipeline.output.format = args.format;
    pipeline.output.rejected = args.rejected;
    pipeline.steps.push(select_spec("select", &args.condition));
    let task = Task::resolve(args.rank, args.world_size, |k| std::env::var(k).ok())?;
    let threads = threads(args.threads)?;
    let steps: Vec<Box<dyn Step>> = vec![Box::new(SelectStep::new(Arc::new(PolarsCondition::new(predicate))))];
    let (local, staged) = stage_if_remote(&args.output, &task.name(), Some(task))?;
    pipeline.output.path = local;
    let mut report = executor::run_built(&pipeline, &RunOptions { task, threads, progress: args.progress }, steps)?;
    if let Some(staged) = &staged {
        staged.complete_run(&pipeline, &mut report, task)?;
    }
    print_report(&report, task, &args.output);
    if let Some(staged) = staged {
        staged.finish()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A pipeline with the defaults of a pipeline file, from `input` to
/// `output`, and no steps yet.
pub fn select_pipeline(input: &str, output: &str, text_field: &str, id_field: &str) -> Result<Pipeline, Error> {
    let mut pipeline = Pipeline::parse("[input]\npath = \"-\"\n[output]\npath = \"-\"\n", "(defaults)")?;
    pipeline.input.path = input.to_owned();
    pipeline.input.text_field = text_field.to_owned();
    pipeline.input.id_field = id_field.to_owned();
    pipeline.output.path = output.to_owned();
    pipeline.validate()?;
    Ok(pipeline)
}

/// The step of a condition, as the stats and the fingerprint of the output
/// folder name it (a rerun with another condition is refused the folder).
pub fn select_spec(name: &str, condition: &str) -> StepSpec {
    let mut options = toml::Table::new();
    options.insert("where".into(), toml::Value::String(condition.to_owned()));
    StepSpec { name: name.to_owned(), kind: "select".into(), mode: StepMode::Filter, options }
}

/// A condition evaluated by Polars, its fields' types learnt from the
/// input's sample when the executor checks the step.
pub struct PolarsCondition {
    predicate: Predicate,
    typed: OnceLock<Typed>,
}

impl PolarsCondition {
    pub fn new(predicate: Predicate) -> PolarsCondition {
        PolarsCondition { predicate, typed: OnceLock::new() }
    }
}

impl Condition for PolarsCondition {
    fn check(&self, sample: &FieldsSample) -> Result<(), InputMismatch> {
        let typed = Typed::from_sample(self.predicate.clone(), sample).map_err(|e| InputMismatch(e.to_string()))?;
        let _ = self.typed.set(typed);
        Ok(())
    }

    fn evaluate(&self, docs: &FieldsSample) -> Result<Vec<Result<bool, JudgeError>>, JudgeError> {
        let typed = self.typed.get().expect("the executor checks a step before it runs it");
        let judged = typed.evaluate(docs).map_err(|e| JudgeError(e.to_string()))?;
        Ok(judged.into_iter().map(|r| r.map_err(JudgeError)).collect())
    }
}
