//! The one trait through which the executor runs a step on a document, and
//! the adapter that runs a filter of `curate-filters` as a step.
//!
//! A step sees one document at a time and may rewrite its text (`&mut`),
//! so that filters and transforms share one mechanism. How it is run is an
//! argument ([`Mode`]), not a choice of method: filtering, filtering while
//! totalling its signals, and annotating go through one entry point, so
//! their decisions cannot drift apart.

use std::borrow::Cow;

use crate::io::doc::{Doc, FieldNames};
use crate::io::plan::Plan;

mod filter_step;
mod select;

pub use filter_step::FilterStep;
pub use select::{Condition, FieldsSample, SelectStep, SELECT_REASON};

/// Why a step could not judge a document: counted as that document's
/// `step_failed` error, with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JudgeError(pub String);

/// What a step decided for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    Drop(Cow<'static, str>),
}

/// How the executor runs a step on a document.
pub enum Mode<'s> {
    /// Decide; a rewrite replaces the text. A step may stop measuring at
    /// the first rule that fires.
    Filter,
    /// As `Filter`, also pushing one value per signal name onto the vector
    /// (for steps whose signals are totalled in the stats: PII counts).
    Count(&'s mut Vec<f64>),
    /// Decide without changing the text (metadata fields are still set),
    /// measuring every signal and pushing one value per signal name.
    Annotate(&'s mut Vec<f64>),
}

/// The run's input is not the one the step was prepared for (a dedup
/// step's documents are named by their place in the input its stages read).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputMismatch(pub String);

/// A pipeline step. The executor calls one instance from many threads, in
/// batch order per unit of input.
pub trait Step: Send + Sync {
    fn judge(&self, doc: &mut Doc, mode: Mode<'_>) -> Outcome;

    /// Names of the signals [`Mode::Count`] and [`Mode::Annotate`] report
    /// (none by default).
    fn signal_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Metadata fields the step sets on every document (name, and whether
    /// the value is a number), which the output must have room for (none by
    /// default).
    fn metadata_fields(&self) -> &[(String, bool)] {
        &[]
    }

    /// Whether the executor totals this step's signals in the stats in
    /// filter mode too, judging with [`Mode::Count`] (not by default).
    fn sums_signals(&self) -> bool {
        false
    }

    /// Refuses a run whose input is not what the step was prepared for.
    fn check_input(&self, plan: &Plan, names: &FieldNames) -> Result<(), InputMismatch> {
        let _ = (plan, names);
        Ok(())
    }

    /// Judges a batch's documents together, in filter mode, for a step that
    /// decides column by column (a `curate select` condition evaluated by
    /// Polars): one outcome per document, or why that document could not be
    /// judged. `None`, the default: the executor calls [`Step::judge`] on each.
    fn judge_batch(&self, docs: &[&Doc]) -> Option<Vec<Result<Outcome, JudgeError>>> {
        let _ = docs;
        None
    }
}
