//! Counts by kind, each with the first few places it happened: how every
//! stage reports errors (documents that could not be used) and warnings
//! (things that lose no document but deserve a look).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many locations of each kind are kept as examples.
pub const MAX_EXAMPLES: usize = 5;

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

/// Occurrences by kind (a stable snake_case key such as `invalid_json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Kinds(pub BTreeMap<String, Occurrences>);

impl Kinds {
    pub fn add(&mut self, kind: &str, n: u64, example: impl FnOnce() -> String) {
        self.0.entry(kind.to_owned()).or_default().add(n, example);
    }

    pub fn merge(&mut self, other: &Kinds) {
        for (kind, occurrences) in &other.0 {
            self.0.entry(kind.clone()).or_default().merge(occurrences);
        }
    }

    /// The counts summed over kinds.
    pub fn total(&self) -> u64 {
        self.0.values().map(|o| o.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Occurrences)> {
        self.0.iter()
    }
}

/// Documents that became errors, by kind: written into stats files as
/// `error_docs` and `errors` beside the stage's other counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorTally {
    #[serde(rename = "error_docs")]
    pub docs: u64,
    #[serde(rename = "errors")]
    pub kinds: Kinds,
}

impl ErrorTally {
    /// Counts `n` documents as errors of `kind`.
    pub fn add(&mut self, kind: &str, n: u64, example: impl FnOnce() -> String) {
        self.docs += n;
        self.kinds.add(kind, n, example);
    }

    pub fn merge(&mut self, other: &ErrorTally) {
        self.docs += other.docs;
        self.kinds.merge(&other.kinds);
    }

    /// Whether the documents by kind add up to `docs`.
    pub fn balances(&self) -> bool {
        self.kinds.total() == self.docs
    }

    /// What is wrong when they do not, for a stage's accounting check.
    pub fn imbalance(&self) -> Option<String> {
        (!self.balances())
            .then(|| format!("errors by kind add up to {} but error_docs is {}", self.kinds.total(), self.docs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_sums_counts_and_keeps_the_first_examples() {
        let mut a = ErrorTally::default();
        for i in 0..4 {
            a.add("invalid_json", 1, || format!("a:{i}"));
        }
        let mut b = a.clone();
        b.add("invalid_json", 2, || "b:9".into());
        b.add("missing_text", 1, || "b:10".into());
        a.merge(&b);
        assert_eq!(a.docs, 4 + 4 + 2 + 1);
        assert_eq!(a.kinds.0["invalid_json"].count, 10);
        assert_eq!(a.kinds.0["invalid_json"].examples, ["a:0", "a:1", "a:2", "a:3", "a:0"]);
        assert_eq!(a.kinds.0["missing_text"].examples, ["b:10"]);
        assert!(a.balances());
        a.docs += 1;
        assert!(!a.balances());
    }

    #[test]
    fn a_tally_is_written_as_error_docs_and_errors() {
        let mut t = ErrorTally::default();
        t.add("invalid_json", 2, || "f.jsonl:3".into());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"error_docs":2,"errors":{"invalid_json":{"count":2,"examples":["f.jsonl:3"]}}}"#
        );
    }
}
