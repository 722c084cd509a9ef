//! Gopher's quality rules (Rae et al. 2021, "Scaling Language Models",
//! appendix A1), with datatrove 0.10's thresholds, order of checks and
//! reason names (`pipeline/filters/gopher_quality_filter.py`).

use serde::Deserialize;

use crate::text::{is_alpha, is_punctuation, len};
use crate::{check_threshold, ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

/// Gopher's stop words: a document needs `min_stop_words` of them.
const STOP_WORDS: &[&str] = &["the", "be", "to", "of", "and", "that", "have", "with"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQualityConfig {
    /// Fewer words (not counting punctuation-only ones) drops: `gopher_short_doc`.
    pub min_doc_words: Option<usize>,
    /// More drops: `gopher_long_doc`.
    pub max_doc_words: Option<usize>,
    /// Mean word length below: `gopher_below_avg_threshold`.
    pub min_avg_word_length: Option<f64>,
    /// Mean word length above: `gopher_above_avg_threshold`.
    pub max_avg_word_length: Option<f64>,
    /// `#` per word, or `...`/`…` per word, above: `gopher_too_many_hashes`,
    /// `gopher_too_many_ellipsis`.
    pub max_symbol_word_ratio: Option<f64>,
    /// Share of lines starting with `•` or `-` above: `gopher_too_many_bullets`.
    pub max_bullet_lines_ratio: Option<f64>,
    /// Share of lines ending with an ellipsis above: `gopher_too_many_end_ellipsis`.
    pub max_ellipsis_lines_ratio: Option<f64>,
    /// Share of words with a letter below: `gopher_below_alpha_threshold`
    /// (datatrove's name for a minimum).
    pub max_non_alpha_words_ratio: Option<f64>,
    /// Fewer distinct stop words: `gopher_enough_stop_words`.
    pub min_stop_words: Option<usize>,
    /// Replaces Gopher's English stop words.
    pub stop_words: Option<Vec<String>>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        GopherQualityConfig {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: None,
        }
    }
}

impl FilterConfig for GopherQualityConfig {
    type Filter = GopherQuality;

    fn thresholds(&self) -> Vec<(&'static str, f64)> {
        let words = |v: Option<usize>| v.map(|v| v as f64);
        crate::bounds(&[
            ("words", words(self.min_doc_words)),
            ("words", words(self.max_doc_words)),
            ("mean_word_length", self.min_avg_word_length),
            ("mean_word_length", self.max_avg_word_length),
            ("hash_ratio", self.max_symbol_word_ratio),
            ("ellipsis_ratio", self.max_symbol_word_ratio),
            ("bullet_lines_ratio", self.max_bullet_lines_ratio),
            ("end_ellipsis_lines_ratio", self.max_ellipsis_lines_ratio),
            ("alpha_words_ratio", self.max_non_alpha_words_ratio),
            ("stop_words", words(self.min_stop_words)),
        ])
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let any = 0.0..=f64::INFINITY;
        check_threshold("min_avg_word_length", self.min_avg_word_length, any.clone())?;
        check_threshold("max_avg_word_length", self.max_avg_word_length, any.clone())?;
        check_threshold("max_symbol_word_ratio", self.max_symbol_word_ratio, any)?;
        check_threshold("max_bullet_lines_ratio", self.max_bullet_lines_ratio, 0.0..=1.0)?;
        check_threshold("max_ellipsis_lines_ratio", self.max_ellipsis_lines_ratio, 0.0..=1.0)?;
        check_threshold("max_non_alpha_words_ratio", self.max_non_alpha_words_ratio, 0.0..=1.0)
    }

    fn build(self) -> Result<GopherQuality, ConfigError> {
        let mut stop_words: Vec<String> = match &self.stop_words {
            Some(words) => words.clone(),
            None => STOP_WORDS.iter().map(|w| w.to_string()).collect(),
        };
        stop_words.sort();
        stop_words.dedup();
        let mut by_len: Vec<Vec<(usize, String)>> = Vec::new();
        for (i, w) in stop_words.iter().enumerate() {
            if by_len.len() <= w.len() {
                by_len.resize(w.len() + 1, Vec::new());
            }
            by_len[w.len()].push((i, w.clone()));
        }
        let ascii_punctuation = (0u8..128).fold(0u128, |set, b| set | u128::from(is_punctuation(b as char)) << b);
        Ok(GopherQuality {
            config: self,
            stop_words_by_len: by_len,
            stop_word_count: stop_words.len(),
            ascii_punctuation,
        })
    }
}

pub struct GopherQuality {
    config: GopherQualityConfig,
    /// The stop words by byte length, each with its number: a word is
    /// compared with the few of its own length, never hashed.
    stop_words_by_len: Vec<Vec<(usize, String)>>,
    stop_word_count: usize,
    /// `is_punctuation` for the ASCII bytes, where almost every character lands.
    ascii_punctuation: u128,
}

/// Python's truthiness of an optional threshold: `None` and `0` turn a rule off.
fn on<T: Copy + Default + PartialEq>(x: Option<T>) -> Option<T> {
    x.filter(|v| *v != T::default())
}

/// `text.count("#")` and `text.count("...") + text.count("…")` in one pass:
/// a run of dots holds (run length) / 3 non-overlapping "...", as Python
/// counts them.
fn count_symbols(text: &str) -> (usize, usize) {
    let bytes = text.as_bytes();
    let (mut hashes, mut ellipses) = (0, 0);
    let mut at = 0;
    while let Some(found) = memchr::memchr3(b'#', b'.', 0xe2, &bytes[at..]) {
        let i = at + found;
        match bytes[i] {
            b'#' => {
                hashes += 1;
                at = i + 1;
            }
            b'.' => {
                let run = bytes[i..].iter().take_while(|&&b| b == b'.').count();
                ellipses += run / 3;
                at = i + run;
            }
            _ => {
                // U+2026 is E2 80 A6.
                ellipses += usize::from(bytes[i + 1..].starts_with(&[0x80, 0xa6]));
                at = i + 1;
            }
        }
    }
    (hashes, ellipses)
}

/// What Gopher's quality rules look at in one document.
struct Measures {
    /// Words that are not only punctuation.
    words: usize,
    mean_word_length: f64,
    hash_ratio: f64,
    ellipsis_ratio: f64,
    bullet_lines_ratio: f64,
    end_ellipsis_lines_ratio: f64,
    /// NaN for a document without words, which then fails no minimum.
    alpha_words_ratio: f64,
    stop_words: usize,
}

impl GopherQuality {
    /// One pass over the words: how many, those not only punctuation and
    /// their characters, those with a letter, and the stop words present.
    fn count_words(&self, doc: &Document<'_>) -> (usize, usize, usize, usize, usize) {
        let (mut words, mut non_symbol, mut non_symbol_chars, mut alpha) = (0, 0, 0, 0);
        let mut present = vec![0u64; self.stop_word_count.div_ceil(64)];
        for w in doc.word_iter() {
            words += 1;
            let bytes = w.as_bytes();
            let (has_non_punct, has_alpha, chars) = if bytes.first().is_some_and(u8::is_ascii_alphabetic) {
                // Most words start with an ASCII letter: a letter, so not
                // punctuation.
                (true, true, len(w))
            } else if bytes.is_ascii() {
                // A letter is not punctuation: most words stop at their first byte.
                let has_alpha = bytes.iter().any(u8::is_ascii_alphabetic);
                (has_alpha || bytes.iter().any(|&b| self.ascii_punctuation & (1 << b) == 0), has_alpha, bytes.len())
            } else {
                (w.chars().any(|ch| !is_punctuation(ch)), w.chars().any(is_alpha), len(w))
            };
            if has_non_punct {
                non_symbol += 1;
                non_symbol_chars += chars;
            }
            alpha += usize::from(has_alpha);
            if let Some(candidates) = self.stop_words_by_len.get(bytes.len()) {
                // The first byte rules out most candidates, and the rest are
                // compared inline: stop words are short, and memcmp is a call.
                let same = |s: &[u8]| s[0] == bytes[0] && s.iter().zip(bytes).all(|(a, b)| a == b);
                if let Some((i, _)) = candidates.iter().find(|(_, s)| same(s.as_bytes())) {
                    present[i / 64] |= 1 << (i % 64);
                }
            }
        }
        let stop_words = present.iter().map(|p| p.count_ones() as usize).sum();
        (words, non_symbol, non_symbol_chars, alpha, stop_words)
    }

    fn measure(&self, doc: &Document<'_>) -> Measures {
        let text = doc.text;
        let (n_words, non_symbol, non_symbol_chars, alpha, stop_words) = self.count_words(doc);
        let (hashes, ellipses) = count_symbols(text);
        // numpy's mean of nothing is NaN, which fails no comparison.
        let mean_word_length = non_symbol_chars as f64 / non_symbol as f64;
        // Python would divide by zero here; an empty document has no symbols.
        let per_word = |n: usize| if n_words == 0 { 0.0 } else { n as f64 / n_words as f64 };
        let (mut lines, mut bullets, mut end_ellipses) = (0, 0, 0);
        for line in crate::text::lines(text) {
            lines += 1;
            let start = line.trim_start_matches(crate::text::is_space);
            bullets += usize::from(start.starts_with('•') || start.starts_with('-'));
            let end = line.trim_end_matches(crate::text::is_space);
            end_ellipses += usize::from(end.ends_with("...") || end.ends_with('…'));
        }
        let per_line = |n: usize| if lines == 0 { 0.0 } else { n as f64 / lines as f64 };
        Measures {
            words: non_symbol,
            mean_word_length,
            hash_ratio: per_word(hashes),
            ellipsis_ratio: per_word(ellipses),
            bullet_lines_ratio: per_line(bullets),
            end_ellipsis_lines_ratio: per_line(end_ellipses),
            alpha_words_ratio: alpha as f64 / n_words as f64,
            stop_words,
        }
    }

    /// The rules in datatrove's order; the first that fails names the reason.
    fn decide(&self, m: &Measures) -> Verdict {
        let c = &self.config;
        if on(c.min_doc_words).is_some_and(|min| m.words < min) {
            return Verdict::drop("gopher_short_doc");
        }
        if on(c.max_doc_words).is_some_and(|max| m.words > max) {
            return Verdict::drop("gopher_long_doc");
        }
        if on(c.min_avg_word_length).is_some_and(|min| m.mean_word_length < min) {
            return Verdict::drop("gopher_below_avg_threshold");
        }
        if on(c.max_avg_word_length).is_some_and(|max| m.mean_word_length > max) {
            return Verdict::drop("gopher_above_avg_threshold");
        }
        if let Some(max) = on(c.max_symbol_word_ratio) {
            if m.hash_ratio > max {
                return Verdict::drop("gopher_too_many_hashes");
            }
            if m.ellipsis_ratio > max {
                return Verdict::drop("gopher_too_many_ellipsis");
            }
        }
        if on(c.max_bullet_lines_ratio).is_some_and(|max| m.bullet_lines_ratio > max) {
            return Verdict::drop("gopher_too_many_bullets");
        }
        if on(c.max_ellipsis_lines_ratio).is_some_and(|max| m.end_ellipsis_lines_ratio > max) {
            return Verdict::drop("gopher_too_many_end_ellipsis");
        }
        if on(c.max_non_alpha_words_ratio).is_some_and(|min| m.alpha_words_ratio < min) {
            return Verdict::drop("gopher_below_alpha_threshold");
        }
        if on(c.min_stop_words).is_some_and(|min| m.stop_words < min) {
            return Verdict::drop("gopher_enough_stop_words");
        }
        Verdict::Keep
    }
}

impl Filter for GopherQuality {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let m = self.measure(doc);
        if let Some(signals) = measure.signals() {
            signals.extend([
                m.words as f64,
                m.mean_word_length,
                m.hash_ratio,
                m.ellipsis_ratio,
                m.bullet_lines_ratio,
                m.end_ellipsis_lines_ratio,
                m.alpha_words_ratio,
                m.stop_words as f64,
            ]);
        }
        self.decide(&m)
    }

    fn signal_names(&self) -> &'static [&'static str] {
        &[
            "words",
            "mean_word_length",
            "hash_ratio",
            "ellipsis_ratio",
            "bullet_lines_ratio",
            "end_ellipsis_lines_ratio",
            "alpha_words_ratio",
            "stop_words",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_bound_signals_the_filter_reports_and_leave_out_rules_turned_off() {
        let config = GopherQualityConfig { max_doc_words: None, min_stop_words: Some(0), ..Default::default() };
        let thresholds = config.thresholds();
        let signals = config.clone().build().unwrap().signal_names();
        assert!(thresholds.iter().all(|(s, _)| signals.contains(s)), "{thresholds:?}");
        assert!(thresholds.contains(&("words", 50.0)) && thresholds.contains(&("alpha_words_ratio", 0.8)));
        assert!(!thresholds.contains(&("words", 100_000.0)) && !thresholds.iter().any(|(s, _)| *s == "stop_words"));
    }

    #[test]
    fn symbols_are_counted_as_python_counts_them() {
        use crate::text::count;
        for text in ["", "#", "a#b##", "..", "...", "....", "......", ". . .", "…", "a…b…", "x...…....#", "é€…\u{2027}"]
        {
            let python = (count(text, "#"), count(text, "...") + count(text, "…"));
            assert_eq!(count_symbols(text), python, "{text:?}");
        }
    }

    fn verdict(text: &str) -> Verdict {
        GopherQualityConfig::default().build().unwrap().filter(&Document::text_only(text), Measure::Verdict)
    }

    /// 60 ordinary words with stop words: passes every rule.
    fn good() -> String {
        "the cat sat with the dog and that was the end of a long story about animals. ".repeat(4)
    }

    #[test]
    fn word_lengths_count_characters_not_bytes() {
        let f = GopherQualityConfig::default().build().unwrap();
        let mean = |text: &str| {
            let mut signals = vec![];
            f.filter(&Document::text_only(text), Measure::Signals(&mut signals));
            signals[1]
        };
        // "naïve" and "café" start with an ASCII letter and hold a two-byte
        // character; "été" starts with one; "..." is punctuation only.
        assert_eq!(mean("naïve café été ..."), 4.0);
        // spaCy splits "#x" into "#" (punctuation only) and "x".
        assert_eq!(mean("ab 12 #x"), 5.0 / 3.0);
    }

    #[test]
    fn a_plain_paragraph_passes() {
        assert_eq!(verdict(&good()), Verdict::Keep);
    }

    #[test]
    fn each_rule_fires_on_its_side_of_the_threshold() {
        assert_eq!(verdict("the cat and the dog"), Verdict::drop("gopher_short_doc"));
        assert_eq!(verdict(&"a to of be ".repeat(20)), Verdict::drop("gopher_below_avg_threshold"));
        assert_eq!(verdict(&"extraordinarily ".repeat(60)), Verdict::drop("gopher_above_avg_threshold"));
        assert_eq!(verdict(&format!("{} {}", good(), "#tag ".repeat(10))), Verdict::drop("gopher_too_many_hashes"));
        assert_eq!(
            verdict(&format!("{} {}", good(), "wait... ".repeat(10))),
            Verdict::drop("gopher_too_many_ellipsis")
        );
        let bullets: String = (0..20).map(|_| "- the cat sat with the dog and that was it\n").collect();
        assert_eq!(verdict(&bullets), Verdict::drop("gopher_too_many_bullets"));
        let trailing: String = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    "the cat sat with the dog and that was…\n"
                } else {
                    "the cat sat with the dog and that was\n"
                }
            })
            .collect();
        assert_eq!(verdict(&trailing), Verdict::drop("gopher_too_many_end_ellipsis"));
        assert_eq!(
            verdict(&format!("{} {}", good(), "123 456 789 ".repeat(20))),
            Verdict::drop("gopher_below_alpha_threshold")
        );
        assert_eq!(verdict(&"cats sat on mats near dogs ".repeat(12)), Verdict::drop("gopher_enough_stop_words"));
    }

    #[test]
    fn thresholds_are_strict_and_none_turns_a_rule_off() {
        // Exactly 50 non-symbol words is enough; 49 is not.
        let words = |n: usize| -> String {
            ["the", "and"]
                .iter()
                .cycle()
                .take(2)
                .chain(std::iter::repeat_n(&"word", n - 2))
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(verdict(&words(50)), Verdict::Keep);
        assert_eq!(verdict(&words(49)), Verdict::drop("gopher_short_doc"));
        let lenient = GopherQualityConfig { min_doc_words: None, ..Default::default() }.build().unwrap();
        assert_eq!(lenient.filter(&Document::text_only(&words(49)), Measure::Verdict), Verdict::Keep);
    }
}
