//! A [`Filter`] of the `curate-filters` crate run as a [`Step`]: the
//! adapter that keeps filters free of the engine's types, as datatrove's
//! `BaseFilter` turns `filter(doc)` into counts and rejected output.

use curate_filters::{Document, Filter, Measure, Verdict};

use super::{Mode, Outcome, Step};
use crate::io::doc::Doc;

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
}

impl<F: Filter> Step for FilterStep<F> {
    fn judge(&self, doc: &mut Doc, mode: Mode<'_>) -> Outcome {
        let view = Document { id: &doc.id, text: &doc.text, metadata: &*doc, words: Some(&doc.words) };
        let annotating = matches!(mode, Mode::Annotate(_));
        let verdict = if self.metadata.is_empty() {
            match mode {
                Mode::Filter => self.filter.filter(&view, Measure::Verdict),
                Mode::Count(signals) | Mode::Annotate(signals) => self.filter.filter(&view, Measure::Signals(signals)),
            }
        } else {
            // A filter with metadata fields measures through them, in every mode.
            let mut values = Vec::with_capacity(self.metadata.len());
            let verdict = self.filter.filter(&view, Measure::Metadata(&mut values));
            for ((name, _), value) in self.metadata.iter().zip(values) {
                doc.set_field(name, &value);
            }
            verdict
        };
        match verdict {
            Verdict::Keep => Outcome::Keep,
            Verdict::Drop(reason) => Outcome::Drop(reason),
            // Annotating leaves the text as it is: a rewrite counts as a keep.
            Verdict::Rewrite(_) if annotating => Outcome::Keep,
            Verdict::Rewrite(text) => {
                doc.text = text;
                doc.words.clear();
                Outcome::Keep
            }
        }
    }

    fn signal_names(&self) -> &'static [&'static str] {
        self.filter.signal_names()
    }

    fn metadata_fields(&self) -> &[(String, bool)] {
        &self.metadata
    }

    fn sums_signals(&self) -> bool {
        self.filter.sums_signals()
    }
}
