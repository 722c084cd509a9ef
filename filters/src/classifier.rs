//! A fastText classifier as a filter: datatrove's `FastTextClassifierFilter`
//! (DCLM's quality model, dolma's toxicity and quality taggers, FineWeb-Edu
//! style classifiers trained with `curate classifier train`).
//!
//! The text is scored whole (`level = "document"`), or by paragraph or line;
//! a unit is kept when some `keep_labels` label scores at least its minimum
//! (or, with `remove_labels`, when none does), the document's text becomes
//! its kept units, and a document with no text left is dropped:
//! `classifier_low_score`. Each label's score, averaged over the units, is
//! written on every document under the label's name (`__label__hq`), as
//! datatrove writes `doc.metadata`. The engine reads the model file.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::fasttext_model::FastTextModel;
use crate::text::{split_lines, strip};
use crate::{check_threshold, ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

/// What a score is computed on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The whole text.
    #[default]
    Document,
    /// A non-blank line with the blank lines after it (datatrove's PARAGRAPH).
    Paragraph,
    /// Each line.
    Line,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// The model file's bytes (the engine fills them from `model_path`).
    #[serde(skip)]
    pub model_bytes: Option<Vec<u8>>,
    /// Keep a unit when one of these labels (without `__label__`) scores at
    /// least its value.
    pub keep_labels: BTreeMap<String, f64>,
    /// Keep a unit unless one of these labels scores at least its value.
    pub remove_labels: BTreeMap<String, f64>,
    /// Shorthand for one keep label: `label = "hq"`, `min_score = 0.5`.
    pub label: Option<String>,
    pub min_score: Option<f64>,
    pub level: Level,
    /// What a newline becomes before scoring: datatrove's default joins
    /// lines with nothing.
    pub newline_replacement: String,
    /// Write every label's mean score on the document.
    pub save_labels: bool,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            model_bytes: None,
            keep_labels: BTreeMap::new(),
            remove_labels: BTreeMap::new(),
            label: None,
            min_score: None,
            level: Level::Document,
            newline_replacement: String::new(),
            save_labels: true,
        }
    }
}

impl ClassifierConfig {
    /// `keep_labels` with the `label`/`min_score` shorthand folded in.
    fn keep(&self) -> BTreeMap<String, f64> {
        let mut keep = self.keep_labels.clone();
        if let Some(label) = &self.label {
            keep.insert(label.clone(), self.min_score.unwrap_or(0.5));
        }
        keep
    }
}

impl FilterConfig for ClassifierConfig {
    type Filter = Classifier;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.newline_replacement.contains('\n') {
            return Err("newline_replacement must not hold a newline: fastText scores one line".into());
        }
        if self.min_score.is_some() && self.label.is_none() {
            return Err("min_score is for `label`; give the label too".into());
        }
        let keep = self.keep();
        if !keep.is_empty() && !self.remove_labels.is_empty() {
            return Err("give keep_labels (or label) or remove_labels, not both".into());
        }
        for (label, score) in keep.iter().chain(&self.remove_labels) {
            check_threshold(&format!("the score of {label:?}"), Some(*score), 0.0..=1.0)?;
        }
        Ok(())
    }

    fn build(mut self) -> Result<Classifier, ConfigError> {
        let bytes = self.model_bytes.take().ok_or("give the fastText model as `model_path`")?;
        let model = FastTextModel::from_bytes(&bytes)?;
        let rule = |labels: BTreeMap<String, f64>| -> Result<Vec<(usize, f32)>, ConfigError> {
            labels
                .into_iter()
                .map(|(label, score)| match model.label_index(&label) {
                    Some(i) => Ok((i, score as f32)),
                    None => Err(ConfigError(format!(
                        "label {label:?} is not one of the model's: {}",
                        (0..model.labels().len()).map(|i| model.label_name(i)).collect::<Vec<_>>().join(", ")
                    ))),
                })
                .collect()
        };
        let (labels, keep) = match (self.keep(), std::mem::take(&mut self.remove_labels)) {
            (keep, _) if !keep.is_empty() => (rule(keep)?, true),
            (_, remove) => (rule(remove)?, false),
        };
        Ok(Classifier { config: self, model, labels, keep })
    }
}

pub struct Classifier {
    config: ClassifierConfig,
    model: FastTextModel,
    /// The labels of the rule and their minimum scores.
    labels: Vec<(usize, f32)>,
    /// Whether those are keep labels (else remove labels).
    keep: bool,
}

impl Classifier {
    /// Whether a unit with these scores (by label index) is kept. datatrove
    /// compares numpy float32 scores with the threshold as float32 (NEP 50);
    /// a unit without scores has no label above any threshold.
    fn passes(&self, scores: Option<&[f32]>) -> bool {
        let any = scores.is_some_and(|scores| self.labels.iter().any(|&(label, min)| scores[label] >= min));
        if self.keep {
            any
        } else {
            !any
        }
    }

    /// Every label's score for one unit, or `None` when fastText predicts
    /// nothing (no token of the line is known, not even the end of line).
    fn scores(&self, unit: &str) -> Option<Vec<f32>> {
        self.model.probabilities(&strip(unit).replace('\n', &self.config.newline_replacement), 0.0)
    }
}

/// The units of `text` at `level`, as datatrove's `split_into_parts` cuts
/// them; their concatenation is the text, save for line endings other than
/// `\n`, which become `\n` (Python's `splitlines` then `"\n".join`).
fn units(text: &str, level: Level) -> Vec<Cow<'_, str>> {
    match level {
        Level::Document => vec![Cow::Borrowed(text)],
        Level::Line => {
            let lines = split_lines(text);
            let n = lines.len();
            lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| if i + 1 < n { Cow::Owned(format!("{l}\n")) } else { Cow::Borrowed(l) })
                .collect()
        }
        Level::Paragraph => {
            let lines = split_lines(text);
            let mut parts = Vec::new();
            let mut current = String::new();
            for (i, line) in lines.iter().enumerate() {
                if !strip(line).is_empty() && !current.is_empty() {
                    parts.push(Cow::Owned(std::mem::take(&mut current)));
                }
                current.push_str(line);
                if i + 1 != lines.len() {
                    current.push('\n');
                }
            }
            if !current.is_empty() {
                parts.push(Cow::Owned(current));
            }
            parts
        }
    }
}

impl Filter for Classifier {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let units = units(doc.text, self.config.level);
        let mut sums = vec![0.0f32; self.model.labels().len()];
        let mut scored = 0;
        let mut kept = String::new();
        let mut all_kept = true;
        for unit in &units {
            let scores = self.scores(unit);
            if let Some(scores) = &scores {
                scored += 1;
                for (sum, score) in sums.iter_mut().zip(scores) {
                    *sum += score;
                }
            }
            if self.passes(scores.as_deref()) {
                kept.push_str(unit);
            } else {
                all_kept = false;
            }
        }
        if let Measure::Metadata(values) = measure {
            if self.config.save_labels {
                let n = scored as f32;
                values.extend(sums.iter().map(|s| if scored == 0 { Value::Null } else { Value::from(s / n) }));
            }
        }
        if strip(&kept).is_empty() {
            Verdict::drop("classifier_low_score")
        } else if all_kept && kept == doc.text {
            Verdict::Keep
        } else {
            Verdict::Rewrite(kept)
        }
    }

    fn metadata_fields(&self) -> Vec<(String, bool)> {
        if !self.config.save_labels {
            return Vec::new();
        }
        self.model.labels().iter().map(|label| (label.clone(), true)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_datatrove_split_into_parts() {
        assert_eq!(units("a\n\n  \nb\nc", Level::Paragraph), ["a\n\n  \n", "b\n", "c"]);
        assert_eq!(units("\n\na\nb\n", Level::Paragraph), ["\n\n", "a\n", "b"]);
        assert_eq!(units("a\r\nb", Level::Line), ["a\n", "b"]);
        assert_eq!(units("", Level::Paragraph), Vec::<String>::new());
        assert_eq!(units("", Level::Document), [""]);
    }

    #[test]
    fn options_are_checked() {
        let both = ClassifierConfig {
            label: Some("hq".into()),
            remove_labels: [("bad".to_owned(), 0.5)].into(),
            ..Default::default()
        };
        assert_eq!(both.validate().unwrap_err().0, "give keep_labels (or label) or remove_labels, not both");
        let lone = ClassifierConfig { min_score: Some(0.3), ..Default::default() };
        assert_eq!(lone.validate().unwrap_err().0, "min_score is for `label`; give the label too");
        let high = ClassifierConfig { keep_labels: [("hq".to_owned(), 1.5)].into(), ..Default::default() };
        assert_eq!(high.validate().unwrap_err().0, "the score of \"hq\" 1.5 is not between 0 and 1");
        let newline = ClassifierConfig { newline_replacement: "\n".into(), ..Default::default() };
        assert!(newline.validate().unwrap_err().0.starts_with("newline_replacement must not hold a newline"));
        assert_eq!(ClassifierConfig::default().build().err().unwrap().0, "give the fastText model as `model_path`");
    }
}
