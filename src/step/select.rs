//! The step of `curate select` (and of each source of `curate mix`): keeps
//! the documents for which a condition over their fields holds. The
//! condition is evaluated column by column over a whole batch, by whatever
//! implements [`Condition`] (the command line gives one evaluated by
//! Polars, which the engine does not depend on).

use std::sync::Arc;

use serde_json::value::RawValue;

use super::{InputMismatch, JudgeError, Mode, Outcome, Step};
use crate::io::doc::{Doc, FieldNames};
use crate::io::plan::Plan;
use crate::io::read::{self, ReadOptions};

/// The reason the step drops a document for.
pub const SELECT_REASON: &str = "select";

/// How many input files are sampled to learn the types of the fields.
const SAMPLE_FILES: usize = 16;

/// Documents' fields other than the text (raw JSON by name), as the engine
/// holds them: what a condition reads.
pub type FieldsSample<'a> = [&'a [(String, Box<RawValue>)]];

pub trait Condition: Send + Sync {
    /// Checks the condition against the fields of documents sampled from the
    /// input, before any work: an unknown field, a type mismatch.
    fn check(&self, sample: &FieldsSample) -> Result<(), InputMismatch>;

    /// Whether the condition holds for each document, or why that document
    /// cannot be judged; `Err` when the whole batch cannot be.
    fn evaluate(&self, docs: &FieldsSample) -> Result<Vec<Result<bool, JudgeError>>, JudgeError>;
}

pub struct SelectStep {
    condition: Arc<dyn Condition>,
}

impl SelectStep {
    pub fn new(condition: Arc<dyn Condition>) -> SelectStep {
        SelectStep { condition }
    }

    fn outcomes(&self, docs: &[&Doc]) -> Vec<Result<Outcome, JudgeError>> {
        let fields: Vec<&[(String, Box<RawValue>)]> = docs.iter().map(|d| d.fields.as_slice()).collect();
        match self.condition.evaluate(&fields) {
            Ok(kept) => kept
                .into_iter()
                .map(|k| k.map(|keep| if keep { Outcome::Keep } else { Outcome::Drop(SELECT_REASON.into()) }))
                .collect(),
            Err(message) => vec![Err(message); docs.len()],
        }
    }
}

impl Step for SelectStep {
    /// One document alone (the executor judges whole batches through
    /// [`Step::judge_batch`]); a document that cannot be judged panics, which
    /// the executor counts as that document's error.
    fn judge(&self, doc: &mut Doc, _: Mode<'_>) -> Outcome {
        match self.outcomes(&[doc]).pop().expect("one outcome per document") {
            Ok(outcome) => outcome,
            Err(JudgeError(message)) => panic!("{message}"),
        }
    }

    fn check_input(&self, plan: &Plan, names: &FieldNames) -> Result<(), InputMismatch> {
        let options = Arc::new(ReadOptions { names: names.clone(), batch_size: 1000, batch_bytes: 16 << 20 });
        let sample = read::sample(plan, &options, SAMPLE_FILES);
        let fields: Vec<&[(String, Box<RawValue>)]> = sample.iter().map(|d| d.fields.as_slice()).collect();
        self.condition.check(&fields)
    }

    fn judge_batch(&self, docs: &[&Doc]) -> Option<Vec<Result<Outcome, JudgeError>>> {
        Some(self.outcomes(docs))
    }
}
