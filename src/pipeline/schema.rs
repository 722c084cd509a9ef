//! The Parquet output's columns: the input's, then the ones steps add.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::config::{Pipeline, StepMode};
use super::executor::RunError;
use super::judge::encode;
use crate::io::format::InputFormat;
use crate::io::plan::Plan;
use crate::io::read::{self, ReadOptions};
use crate::io::write;
use crate::step::Step;

/// How many input files are sampled to infer a Parquet output schema.
const SCHEMA_SAMPLE_FILES: usize = 16;

/// The Parquet output's schema, the same for every shard of the run: when
/// every input is Parquet, the first file's own schema (exact types);
/// otherwise one inferred from the first batch of each of the first
/// [`SCHEMA_SAMPLE_FILES`] files, so that fields that only some files have
/// are columns too.
pub(super) fn output_schema(plan: &Plan, read: &Arc<ReadOptions>) -> Result<SchemaRef, RunError> {
    let names = &read.names;
    if plan.files.iter().all(|f| f.format == InputFormat::Parquet) {
        let first = &plan.files[0];
        let builder = std::fs::File::open(&first.path)
            .map_err(|e| e.to_string())
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()));
        return match builder {
            Ok(b) => Ok(write::schema_from_parquet(b.schema(), &names.text, &names.id)),
            Err(message) => Err(RunError::ParquetSchema { path: first.path.clone(), message }),
        };
    }
    let mut sample = Vec::new();
    let mut sampled = std::collections::HashSet::new();
    for unit in &plan.units {
        if sampled.len() == SCHEMA_SAMPLE_FILES {
            break;
        }
        if !sampled.insert(unit.file) {
            continue;
        }
        let mut reader = read::open(&plan.files[unit.file], unit, read.clone());
        if let Some(batch) = reader.next_batch() {
            sample.extend(batch.iter().filter_map(|r| r.as_ref().ok()).map(|d| encode(d, &names.text, &[])));
        }
    }
    write::infer_schema(&sample, &names.text, &names.id).map_err(RunError::InferSchema)
}

/// The columns steps add: metadata fields (the language), and in annotate
/// mode the verdict, then each signal.
pub(super) fn annotation_columns(pipeline: &Pipeline, steps: &[Box<dyn Step>]) -> Vec<(String, bool)> {
    let mut columns = Vec::new();
    for (spec, step) in pipeline.steps.iter().zip(steps) {
        columns.extend(step.metadata_fields().iter().cloned());
        if spec.mode == StepMode::Annotate {
            columns.push((spec.name.clone(), false));
            columns.extend(step.signal_names().iter().map(|s| (format!("{}.{s}", spec.name), true)));
        }
    }
    columns
}
