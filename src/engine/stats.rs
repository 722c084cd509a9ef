//! The accounting of a run: where every input document went.
//!
//! The invariant `input_docs = kept_docs + dropped_docs + error_docs` holds
//! for every unit, task and merged run; [`Stats::check`] verifies it and the
//! executor refuses to write stats that break it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many locations of each error kind are kept as examples.
pub const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub input_docs: u64,
    /// Bytes of input files read (compressed, as on disk).
    pub input_bytes: u64,
    pub kept_docs: u64,
    pub dropped_docs: u64,
    pub error_docs: u64,
    /// UTF-8 bytes of text in the documents read and in those kept.
    pub input_text_bytes: u64,
    pub kept_text_bytes: u64,
    /// Units of work done (whole files, byte ranges, row groups).
    pub units: u64,
    /// Output shards written (rejected output not included).
    pub output_files: u64,
    /// With `output.partition_by`: kept documents per subfolder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, u64>,
    pub steps: Vec<StepStats>,
    /// Error kind → count and the first locations.
    pub errors: BTreeMap<String, Occurrences>,
    /// Things that lose no document but deserve a look (empty files,
    /// rejected documents that did not fit the rejected output's schema).
    pub warnings: BTreeMap<String, Occurrences>,
    /// Seconds spent reading and parsing, and encoding and writing, summed
    /// over units.
    pub read_seconds: f64,
    pub write_seconds: f64,
    /// Wall-clock seconds of the task (for merged stats: of the longest task).
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepStats {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `filter` or `annotate`; an annotating step drops nothing, and its
    /// `reasons` count the documents it would have dropped.
    pub mode: String,
    pub docs_in: u64,
    pub dropped: u64,
    /// Drop reason → documents.
    pub reasons: BTreeMap<String, u64>,
    /// Totals of the step's signals, for steps whose signals are counts
    /// (PII replacements by kind).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals: BTreeMap<String, f64>,
    /// Wall-clock seconds in this step, summed over units.
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Occurrences {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Occurrences {
    /// Counts `n`; `example` is only called while examples are wanted, so
    /// that a costly location (counting lines) is computed a few times only.
    pub fn add(&mut self, n: u64, example: impl FnOnce() -> String) {
        self.count += n;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example());
        }
    }

    /// Adds `other`'s count, and its examples while there is room.
    pub fn merge(&mut self, other: &Occurrences) {
        self.count += other.count;
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.iter().take(room).cloned());
    }
}

impl Stats {
    /// Empty stats for a pipeline with these `(name, type, mode)` steps.
    pub fn for_steps<'a>(steps: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Stats {
        let steps = steps
            .into_iter()
            .map(|(name, kind, mode)| StepStats {
                name: name.into(),
                kind: kind.into(),
                mode: mode.into(),
                ..Default::default()
            })
            .collect();
        Stats { steps, ..Default::default() }
    }

    /// Counts `n` documents as errors of `kind` (they were counted as input
    /// where they were read).
    pub fn error(&mut self, kind: &str, n: u64, example: impl FnOnce() -> String) {
        self.error_docs += n;
        self.errors.entry(kind.to_owned()).or_default().add(n, example);
    }

    pub fn warning(&mut self, kind: &str, example: impl FnOnce() -> String) {
        self.warnings.entry(kind.to_owned()).or_default().add(1, example);
    }

    /// Adds `other` (a later unit or task) into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.input_docs += other.input_docs;
        self.input_bytes += other.input_bytes;
        self.kept_docs += other.kept_docs;
        self.dropped_docs += other.dropped_docs;
        self.error_docs += other.error_docs;
        self.input_text_bytes += other.input_text_bytes;
        self.kept_text_bytes += other.kept_text_bytes;
        self.units += other.units;
        self.output_files += other.output_files;
        for (partition, n) in &other.partitions {
            *self.partitions.entry(partition.clone()).or_default() += n;
        }
        if self.steps.is_empty() {
            self.steps = other
                .steps
                .iter()
                .map(|s| StepStats {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    mode: s.mode.clone(),
                    ..Default::default()
                })
                .collect();
        }
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.docs_in += theirs.docs_in;
            mine.dropped += theirs.dropped;
            mine.seconds += theirs.seconds;
            for (reason, n) in &theirs.reasons {
                *mine.reasons.entry(reason.clone()).or_default() += n;
            }
            for (signal, total) in &theirs.totals {
                *mine.totals.entry(signal.clone()).or_default() += total;
            }
        }
        for (kind, occ) in &other.errors {
            self.errors.entry(kind.clone()).or_default().merge(occ);
        }
        for (kind, occ) in &other.warnings {
            self.warnings.entry(kind.clone()).or_default().merge(occ);
        }
        self.read_seconds += other.read_seconds;
        self.write_seconds += other.write_seconds;
        self.wall_seconds = self.wall_seconds.max(other.wall_seconds);
    }

    /// Verifies that every document is accounted for, once.
    pub fn check(&self) -> Result<(), String> {
        let accounted = self.kept_docs + self.dropped_docs + self.error_docs;
        if self.input_docs != accounted {
            return Err(format!(
                "input_docs {} != kept_docs {} + dropped_docs {} + error_docs {}",
                self.input_docs, self.kept_docs, self.dropped_docs, self.error_docs
            ));
        }
        let step_drops: u64 = self.steps.iter().map(|s| s.dropped).sum();
        if step_drops != self.dropped_docs {
            return Err(format!("steps dropped {step_drops} documents but dropped_docs is {}", self.dropped_docs));
        }
        let errors: u64 = self.errors.values().map(|o| o.count).sum();
        if errors != self.error_docs {
            return Err(format!("errors by kind add up to {errors} but error_docs is {}", self.error_docs));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sums_counts_and_keeps_the_first_examples() {
        let mut a = Stats::for_steps([("len", "length", "filter")]);
        a.input_docs = 3;
        a.kept_docs = 2;
        a.dropped_docs = 1;
        a.steps[0].dropped = 1;
        a.steps[0].reasons.insert("too_short".into(), 1);
        for i in 0..4 {
            a.error("invalid_json", 1, || format!("a:{i}"));
        }
        let mut b = a.clone();
        b.error("invalid_json", 2, || "b:9".into());
        a.input_docs += 4;
        b.input_docs += 6;
        a.merge(&b);
        assert_eq!(a.input_docs, 3 + 4 + 3 + 6);
        assert_eq!(a.errors["invalid_json"].count, 10);
        assert_eq!(a.errors["invalid_json"].examples, ["a:0", "a:1", "a:2", "a:3", "a:0"]);
        assert_eq!(a.steps[0].reasons["too_short"], 2);
        a.check().unwrap();
    }

    #[test]
    fn check_catches_a_lost_document() {
        let s = Stats { input_docs: 2, kept_docs: 1, ..Default::default() };
        assert_eq!(s.check().unwrap_err(), "input_docs 2 != kept_docs 1 + dropped_docs 0 + error_docs 0");
    }
}
