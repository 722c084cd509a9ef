//! Length bounds on a document's text, in characters (Unicode scalar values)
//! or in UTF-8 bytes. Both bounds are inclusive; `None` turns a bound off.

use serde::Deserialize;

use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LengthFilterConfig {
    /// Drop documents shorter than this many characters (`too_short`).
    pub min_chars: Option<u64>,
    /// Drop documents longer than this many characters (`too_long`).
    pub max_chars: Option<u64>,
    /// Drop documents shorter than this many UTF-8 bytes (`too_few_bytes`).
    pub min_bytes: Option<u64>,
    /// Drop documents longer than this many UTF-8 bytes (`too_many_bytes`).
    pub max_bytes: Option<u64>,
}

impl FilterConfig for LengthFilterConfig {
    type Filter = LengthFilter;

    fn thresholds(&self) -> Vec<(&'static str, f64)> {
        let n = |v: Option<u64>| v.map(|v| v as f64);
        crate::bounds(&[
            ("chars", n(self.min_chars)),
            ("chars", n(self.max_chars)),
            ("bytes", n(self.min_bytes)),
            ("bytes", n(self.max_bytes)),
        ])
    }

    fn build(self) -> Result<LengthFilter, ConfigError> {
        Ok(LengthFilter::new(self))
    }

    /// Checks that each lower bound is at most its upper bound; the error
    /// names the offending keys.
    fn validate(&self) -> Result<(), ConfigError> {
        check_bounds(self.min_chars, self.max_chars, "min_chars", "max_chars")?;
        check_bounds(self.min_bytes, self.max_bytes, "min_bytes", "max_bytes")
    }
}

fn check_bounds(lo: Option<u64>, hi: Option<u64>, lo_key: &str, hi_key: &str) -> Result<(), ConfigError> {
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo > hi => Err(format!("{lo_key} ({lo}) is greater than {hi_key} ({hi})").into()),
        _ => Ok(()),
    }
}

pub struct LengthFilter {
    config: LengthFilterConfig,
}

impl LengthFilter {
    pub fn new(config: LengthFilterConfig) -> Self {
        LengthFilter { config }
    }
}

impl Filter for LengthFilter {
    fn signal_names(&self) -> &'static [&'static str] {
        &["chars", "bytes"]
    }

    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        if let Some(signals) = measure.signals() {
            signals.push(doc.text.chars().count() as f64);
            signals.push(doc.text.len() as f64);
        }
        let c = &self.config;
        let bytes = doc.text.len() as u64;
        if c.min_bytes.is_some_and(|min| bytes < min) {
            return Verdict::drop("too_few_bytes");
        }
        if c.max_bytes.is_some_and(|max| bytes > max) {
            return Verdict::drop("too_many_bytes");
        }
        if c.min_chars.is_some() || c.max_chars.is_some() {
            // Counting characters is a pass over the text, so only when asked.
            let chars = doc.text.chars().count() as u64;
            if c.min_chars.is_some_and(|min| chars < min) {
                return Verdict::drop("too_short");
            }
            if c.max_chars.is_some_and(|max| chars > max) {
                return Verdict::drop("too_long");
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_bounds_that_are_set() {
        let config = LengthFilterConfig { min_chars: Some(200), max_bytes: Some(1000), ..Default::default() };
        assert_eq!(config.thresholds(), [("chars", 200.0), ("bytes", 1000.0)]);
    }

    fn verdict(config: LengthFilterConfig, text: &str) -> Verdict {
        LengthFilter::new(config).filter(&Document::text_only(text), Measure::Verdict)
    }

    #[test]
    fn char_bounds_are_inclusive_and_count_characters_not_bytes() {
        let config = LengthFilterConfig { min_chars: Some(3), max_chars: Some(4), ..Default::default() };
        assert_eq!(verdict(config.clone(), "éé"), Verdict::drop("too_short"));
        assert_eq!(verdict(config.clone(), "ééé"), Verdict::Keep);
        assert_eq!(verdict(config.clone(), "éééé"), Verdict::Keep);
        assert_eq!(verdict(config, "ééééé"), Verdict::drop("too_long"));
    }

    #[test]
    fn byte_bounds_count_utf8_bytes() {
        let config = LengthFilterConfig { min_bytes: Some(4), max_bytes: Some(6), ..Default::default() };
        assert_eq!(verdict(config.clone(), "é"), Verdict::drop("too_few_bytes"));
        assert_eq!(verdict(config.clone(), "éé"), Verdict::Keep);
        assert_eq!(verdict(config.clone(), "ééé"), Verdict::Keep);
        assert_eq!(verdict(config, "éééé"), Verdict::drop("too_many_bytes"));
    }

    #[test]
    fn signals_are_characters_and_bytes() {
        let mut signals = Vec::new();
        let filter = LengthFilter::new(LengthFilterConfig { min_chars: Some(3), ..Default::default() });
        assert_eq!(
            filter.filter(&Document::text_only("éé"), Measure::Signals(&mut signals)),
            Verdict::drop("too_short")
        );
        assert_eq!(signals, [2.0, 4.0]);
        assert_eq!(filter.signal_names(), ["chars", "bytes"]);
    }

    #[test]
    fn no_bounds_keeps_everything() {
        assert_eq!(verdict(LengthFilterConfig::default(), ""), Verdict::Keep);
    }

    #[test]
    fn validate_names_the_inverted_bounds() {
        let config = LengthFilterConfig { min_chars: Some(10), max_chars: Some(5), ..Default::default() };
        assert_eq!(config.validate().unwrap_err().0, "min_chars (10) is greater than max_chars (5)");
    }
}
