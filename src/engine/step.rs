//! The one trait through which the engine runs a step on a document.

use std::borrow::Cow;

use curate_filters::{Document, Filter, Verdict};

use crate::doc::{Doc, FieldNames};
use crate::io::plan::Plan;

/// What a step decided for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    Drop(Cow<'static, str>),
}

/// A pipeline step. It sees one document at a time and may rewrite its text
/// (`&mut`), so that filters and transforms share one mechanism; the engine
/// calls it from many threads, in batch order per unit of input.
pub trait Step: Send + Sync {
    fn process(&self, doc: &mut Doc) -> Outcome;

    /// Names of the signals [`Step::annotate`] reports.
    fn signal_names(&self) -> &'static [&'static str];

    /// Annotate mode: judges the document without changing its text (its
    /// metadata fields are still set), and pushes one value per signal name
    /// onto `signals`.
    fn annotate(&self, doc: &mut Doc, signals: &mut Vec<f64>) -> Outcome;

    /// Metadata fields the step sets on every document (name, and whether
    /// the value is a number), which the output must have room for.
    fn metadata_fields(&self) -> &[(String, bool)];

    /// Whether the engine totals this step's signals in the stats in filter
    /// mode too, through [`Step::process_counting`].
    fn sums_signals(&self) -> bool;

    /// [`Step::process`], also pushing the signals onto `signals`.
    fn process_counting(&self, doc: &mut Doc, signals: &mut Vec<f64>) -> Outcome;

    /// Refuses a run whose input is not what the step was prepared for (a
    /// dedup step's documents are named by unit and place).
    fn check_input(&self, plan: &Plan, names: &FieldNames) -> Result<(), String> {
        let _ = (plan, names);
        Ok(())
    }
}

/// Runs a [`Filter`] of the `curate-filters` crate as a step: the adapter
/// that keeps filters free of the engine's types.
pub struct FilterStep<F> {
    filter: F,
    /// The filter's metadata fields, asked once.
    metadata: Vec<(String, bool)>,
}

impl<F: Filter> FilterStep<F> {
    pub fn new(filter: F) -> Self {
        let metadata = filter.metadata_fields();
        FilterStep { filter, metadata }
    }

    /// Judges the document, setting the filter's metadata fields on it.
    fn judge(&self, doc: &mut Doc, signals: Option<&mut Vec<f64>>) -> Verdict {
        let view = Document { id: &doc.id, text: &doc.text, metadata: &*doc, words: Some(&doc.words) };
        if self.metadata.is_empty() {
            return match signals {
                Some(signals) => self.filter.filter_with_signals(&view, signals),
                None => self.filter.filter(&view),
            };
        }
        let mut values = Vec::with_capacity(self.metadata.len());
        let verdict = self.filter.filter_with_metadata(&view, &mut values);
        for ((name, _), value) in self.metadata.iter().zip(values) {
            doc.set_field(name, &value);
        }
        verdict
    }
}

/// Applies a verdict to the document: a rewrite replaces its text.
fn apply(doc: &mut Doc, verdict: Verdict) -> Outcome {
    match verdict {
        Verdict::Keep => Outcome::Keep,
        Verdict::Drop(reason) => Outcome::Drop(reason),
        Verdict::Rewrite(text) => {
            doc.text = text;
            doc.words.clear();
            Outcome::Keep
        }
    }
}

impl<F: Filter> Step for FilterStep<F> {
    fn process(&self, doc: &mut Doc) -> Outcome {
        let verdict = self.judge(doc, None);
        apply(doc, verdict)
    }

    fn sums_signals(&self) -> bool {
        self.filter.sums_signals()
    }

    fn process_counting(&self, doc: &mut Doc, signals: &mut Vec<f64>) -> Outcome {
        let verdict = self.judge(doc, Some(signals));
        apply(doc, verdict)
    }

    fn signal_names(&self) -> &'static [&'static str] {
        self.filter.signal_names()
    }

    fn metadata_fields(&self) -> &[(String, bool)] {
        &self.metadata
    }

    fn annotate(&self, doc: &mut Doc, signals: &mut Vec<f64>) -> Outcome {
        match self.judge(doc, Some(signals)) {
            Verdict::Drop(reason) => Outcome::Drop(reason),
            // Annotating leaves the text as it is: a rewrite counts as a keep.
            Verdict::Keep | Verdict::Rewrite(_) => Outcome::Keep,
        }
    }
}
