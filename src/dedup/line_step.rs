//! The `line_dedup` step: removes from each document the lines that
//! `curate dedup lines` counted more often than `max_repeats` times over the
//! corpus (after normalisation, so "Page 3 of 10" and "page 4 of 12" are one
//! line). A document left with no text is dropped (reason
//! `all_lines_duplicated`).
//!
//! ```toml
//! [[step]]
//! type = "line_dedup"
//! work = "dedup/"      # the folder given to `curate dedup lines`
//! max_repeats = 1      # default: a line seen twice anywhere goes, every copy of it (CCNet)
//! ```
//!
//! Signals: `removed_lines` and `removed_fraction` (of the lines that
//! count, i.e. that do not normalise to nothing). The counts may come from a
//! larger corpus than the run's input: lines are named by content, not place.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::DedupError;
use super::lines::{self, line_hash};
use crate::io::doc::Doc;
use crate::step::{Mode, Outcome, Step};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDedupConfig {
    pub work: PathBuf,
    #[serde(default = "one")]
    pub max_repeats: u32,
}

fn one() -> u32 {
    1
}

pub struct LineDedupStep {
    frequent: HashSet<u64>,
}

/// What removing the frequent lines does to one text.
struct Cut {
    text: String,
    removed: usize,
    counted: usize,
}

impl LineDedupConfig {
    /// Checks that every unit's lines were counted in `work`, without
    /// reading the counts.
    pub fn check(&self) -> Result<(), DedupError> {
        lines::complete_units(&self.work).map(drop)
    }
}

impl LineDedupStep {
    pub fn new(config: LineDedupConfig) -> Result<LineDedupStep, DedupError> {
        Ok(LineDedupStep { frequent: lines::frequent_lines(&config.work, config.max_repeats)? })
    }

    fn cut(&self, text: &str) -> Cut {
        let mut cut = Cut { text: String::with_capacity(text.len()), removed: 0, counted: 0 };
        for piece in text.split_inclusive('\n') {
            match line_hash(piece.trim_end_matches(['\n', '\r'])) {
                Some(hash) => {
                    cut.counted += 1;
                    if self.frequent.contains(&hash) {
                        cut.removed += 1;
                    } else {
                        cut.text.push_str(piece);
                    }
                }
                None => cut.text.push_str(piece),
            }
        }
        cut
    }

    fn decide(&self, doc: &mut Doc, signals: Option<&mut Vec<f64>>, rewrite: bool) -> Outcome {
        let cut = self.cut(&doc.text);
        if let Some(signals) = signals {
            let fraction = if cut.counted == 0 { 0.0 } else { cut.removed as f64 / cut.counted as f64 };
            signals.extend([cut.removed as f64, fraction]);
        }
        if cut.removed == 0 {
            return Outcome::Keep;
        }
        if cut.removed == cut.counted {
            return Outcome::Drop("all_lines_duplicated".into());
        }
        if rewrite {
            doc.text = cut.text;
            doc.words.clear();
        }
        Outcome::Keep
    }
}

impl Step for LineDedupStep {
    fn judge(&self, doc: &mut Doc, mode: Mode<'_>) -> Outcome {
        match mode {
            Mode::Filter => self.decide(doc, None, true),
            Mode::Count(signals) => self.decide(doc, Some(signals), true),
            Mode::Annotate(signals) => self.decide(doc, Some(signals), false),
        }
    }

    fn signal_names(&self) -> &'static [&'static str] {
        &["removed_lines", "removed_fraction"]
    }

    fn metadata_fields(&self) -> &[(String, bool)] {
        &[]
    }

    fn sums_signals(&self) -> bool {
        true
    }
}
