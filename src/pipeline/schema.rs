//! The Parquet output's columns: the input's, then the ones steps add.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::config::{Pipeline, StepMode};
use super::executor::RunError;
use super::judge::encode;
use crate::io::doc::Doc;
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
pub(super) fn output_schema(plan: &Plan, read: &Arc<ReadOptions>, sample: &[Doc]) -> Result<SchemaRef, RunError> {
    let names = &read.names;
    if plan.files.iter().all(|f| f.format == InputFormat::Parquet) {
        let first = &plan.files[0];
        let builder = first
            .open()
            .map_err(|e| e.to_string())
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()));
        return match builder {
            Ok(b) => Ok(write::schema_from_parquet(b.schema(), &names.text, &names.id)),
            Err(message) => Err(RunError::ParquetSchema { path: first.path.clone(), message }),
        };
    }
    let sample: Vec<Vec<u8>> = sample.iter().map(|d| encode(d, &names.text, Some(&names.id), &[])).collect();
    Ok(write::infer_schema(&sample, &names.text, &names.id))
}

/// The documents an annotating step must not collide with and the output
/// schema is inferred from: [`read::sample`] of [`SCHEMA_SAMPLE_FILES`] files.
pub(super) fn sample_docs(plan: &Plan, read: &Arc<ReadOptions>) -> Vec<Doc> {
    read::sample(plan, read, SCHEMA_SAMPLE_FILES)
}

/// Refuses, before any work, an annotating step that would write a field
/// the documents already have or another step writes: the text, the id,
/// a field of the sampled input, another step's field. (A document that
/// turns out to hold such a field after all is a counted error.)
pub(super) fn check_annotation_fields(
    pipeline: &Pipeline,
    steps: &[Box<dyn Step>],
    sample: &[Doc],
) -> Result<(), RunError> {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for doc in sample {
        for (field, _) in &doc.fields {
            taken.entry(field.clone()).or_insert_with(|| "a field of the input".to_owned());
        }
    }
    for (spec, step) in pipeline.steps.iter().zip(steps) {
        for (field, _) in step.metadata_fields() {
            taken.entry(field.clone()).or_insert_with(|| format!("set by step {}", spec.name));
        }
    }
    for (spec, step) in pipeline.steps.iter().zip(steps).filter(|(s, _)| s.mode == StepMode::Annotate) {
        let fields = std::iter::once(spec.name.clone())
            .chain(step.signal_names().iter().map(|signal| format!("{}.{signal}", spec.name)));
        for field in fields {
            let clash = pipeline.reserved_field(&field).map(str::to_owned).or_else(|| taken.get(&field).cloned());
            if let Some(taken) = clash {
                return Err(RunError::FieldCollision { step: spec.name.clone(), field, taken });
            }
            taken.insert(field, format!("written by step {}", spec.name));
        }
    }
    Ok(())
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
