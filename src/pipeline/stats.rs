//! The accounting of a pipeline run: where every input document went.
//!
//! The invariant `input_docs = kept_docs + dropped_docs + error_docs` holds
//! for every unit, task and merged run; [`Stats::check`] verifies it and the
//! stage driver refuses to write stats that break it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::io::doc::ErrorKind;
use crate::runtime::tally::{ErrorTally, Kinds};
use crate::stage::{StageStats, Unbalanced};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub input_docs: u64,
    /// Bytes of input files read (compressed, as on disk).
    pub input_bytes: u64,
    pub kept_docs: u64,
    pub dropped_docs: u64,
    /// `error_docs`, and `errors`: error kind → count and the first locations.
    #[serde(flatten)]
    pub errors: ErrorTally,
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
    /// Things that lose no document but deserve a look (empty files,
    /// rejected documents that did not fit the rejected output's schema).
    pub warnings: Kinds,
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

impl StepStats {
    fn named_like(other: &StepStats) -> StepStats {
        StepStats { name: other.name.clone(), kind: other.kind.clone(), mode: other.mode.clone(), ..Default::default() }
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
    pub fn error(&mut self, kind: ErrorKind, n: u64, example: impl FnOnce() -> String) {
        self.errors.add(kind.as_str(), n, example);
    }

    pub fn warning(&mut self, kind: &str, example: impl FnOnce() -> String) {
        self.warnings.add(kind, 1, example);
    }
}

impl StageStats for Stats {
    /// Adds `other` (a later unit or task) into `self`.
    fn merge(&mut self, other: &Stats) {
        self.input_docs += other.input_docs;
        self.input_bytes += other.input_bytes;
        self.kept_docs += other.kept_docs;
        self.dropped_docs += other.dropped_docs;
        self.errors.merge(&other.errors);
        self.input_text_bytes += other.input_text_bytes;
        self.kept_text_bytes += other.kept_text_bytes;
        self.units += other.units;
        self.output_files += other.output_files;
        for (partition, n) in &other.partitions {
            *self.partitions.entry(partition.clone()).or_default() += n;
        }
        if self.steps.is_empty() {
            self.steps = other.steps.iter().map(StepStats::named_like).collect();
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
        self.warnings.merge(&other.warnings);
        self.read_seconds += other.read_seconds;
        self.write_seconds += other.write_seconds;
        self.wall_seconds = self.wall_seconds.max(other.wall_seconds);
    }

    fn docs(&self) -> u64 {
        self.input_docs
    }

    /// Verifies that every document is accounted for, once.
    fn check(&self) -> Result<(), Unbalanced> {
        let accounted = self.kept_docs + self.dropped_docs + self.errors.docs;
        if self.input_docs != accounted {
            return Err(Unbalanced(format!(
                "input_docs {} != kept_docs {} + dropped_docs {} + error_docs {}",
                self.input_docs, self.kept_docs, self.dropped_docs, self.errors.docs
            )));
        }
        let step_drops: u64 = self.steps.iter().map(|s| s.dropped).sum();
        if step_drops != self.dropped_docs {
            return Err(Unbalanced(format!(
                "steps dropped {step_drops} documents but dropped_docs is {}",
                self.dropped_docs
            )));
        }
        self.errors.imbalance().map_or(Ok(()), |why| Err(Unbalanced(why)))
    }

    fn set_wall_seconds(&mut self, seconds: f64) {
        self.wall_seconds = seconds;
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
            a.error(ErrorKind::InvalidJson, 1, || format!("a:{i}"));
        }
        let mut b = a.clone();
        b.error(ErrorKind::InvalidJson, 2, || "b:9".into());
        a.input_docs += 4;
        b.input_docs += 6;
        a.merge(&b);
        assert_eq!(a.input_docs, 3 + 4 + 3 + 6);
        assert_eq!(a.errors.kinds.0["invalid_json"].count, 10);
        assert_eq!(a.errors.kinds.0["invalid_json"].examples, ["a:0", "a:1", "a:2", "a:3", "a:0"]);
        assert_eq!(a.steps[0].reasons["too_short"], 2);
        a.check().unwrap();
    }

    #[test]
    fn check_catches_a_lost_document() {
        let s = Stats { input_docs: 2, kept_docs: 1, ..Default::default() };
        assert_eq!(s.check().unwrap_err().0, "input_docs 2 != kept_docs 1 + dropped_docs 0 + error_docs 0");
    }

    #[test]
    fn stats_keep_their_json_keys() {
        let mut s = Stats::for_steps([("len", "length", "filter")]);
        s.error(ErrorKind::MissingText, 1, || "f.jsonl:1".into());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["error_docs"], 1);
        assert_eq!(json["errors"]["missing_text"]["count"], 1);
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}
