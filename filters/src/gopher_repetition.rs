//! Gopher's repetition rules (Rae et al. 2021, table A1): duplicated
//! paragraphs, lines and n-grams, with datatrove 0.10's thresholds, order
//! of checks and reason names (`pipeline/filters/gopher_repetition_filter.py`).

use serde::Deserialize;

use crate::repeats::{find_duplicates, NGrams};
use crate::rules::Rules;
use crate::text::{len, strip};
use crate::{check_threshold, ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionConfig {
    /// Share of duplicated lines above: `dup_line_frac`.
    pub dup_line_frac: Option<f64>,
    /// Share of duplicated paragraphs above: `dup_para_frac`.
    pub dup_para_frac: Option<f64>,
    /// Characters in duplicated lines, per character of text, above: `dup_line_char_frac`.
    pub dup_line_char_frac: Option<f64>,
    /// Characters in duplicated paragraphs, per character, above: `dup_para_char_frac`.
    pub dup_para_char_frac: Option<f64>,
    /// `[n, fraction]`: characters of the most frequent word n-gram (times
    /// its count) per character above the fraction: `top_{n}_gram`.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `[n, fraction]`: characters in repeated word n-grams per character
    /// above the fraction: `duplicated_{n}_n_grams`.
    pub dup_n_grams: Vec<(usize, f64)>,
    /// Longer texts (in bytes) are dropped unmeasured:
    /// `repetition_doc_too_long`. Counting repeats holds about 90 bytes per
    /// word (the words, their hashes, a table) on the thread that judges
    /// the document, up to 46 times the text for one-letter words; the cap
    /// bounds that (16 MiB: at most about 750 MB a thread). Not in datatrove,
    /// whose pure-Python count of a document this size takes hours anyway.
    pub max_doc_bytes: Option<usize>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        GopherRepetitionConfig {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
            max_doc_bytes: Some(16 << 20),
        }
    }
}

impl FilterConfig for GopherRepetitionConfig {
    type Filter = GopherRepetition;

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some((n, _)) = self.top_n_grams.iter().chain(&self.dup_n_grams).find(|(n, _)| *n == 0 || *n > 64) {
            return Err(format!("n-gram size {n} is not between 1 and 64").into());
        }
        for (key, value) in [
            ("dup_line_frac", self.dup_line_frac),
            ("dup_para_frac", self.dup_para_frac),
            ("dup_line_char_frac", self.dup_line_char_frac),
            ("dup_para_char_frac", self.dup_para_char_frac),
        ] {
            check_threshold(key, value, 0.0..=1.0)?;
        }
        for (key, list) in [("top_n_grams", &self.top_n_grams), ("dup_n_grams", &self.dup_n_grams)] {
            for &(_, fraction) in list {
                check_threshold(key, Some(fraction), 0.0..=1.0)?;
            }
        }
        if self.max_doc_bytes == Some(0) {
            return Err("max_doc_bytes must be at least 1 (leave it out for 16 MiB)".into());
        }
        Ok(())
    }

    fn build(self) -> Result<GopherRepetition, ConfigError> {
        let reasons = |prefix: &str, suffix: &str, list: &[(usize, f64)]| -> Vec<&'static str> {
            list.iter().map(|(n, _)| &*Box::leak(format!("{prefix}{n}{suffix}").into_boxed_str())).collect()
        };
        let top_reasons = reasons("top_", "_gram", &self.top_n_grams);
        let dup_reasons = reasons("duplicated_", "_n_grams", &self.dup_n_grams);
        let signals = ["dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
            .into_iter()
            .chain(top_reasons.iter().copied())
            .chain(dup_reasons.iter().copied())
            .collect::<Vec<_>>();
        Ok(GopherRepetition { top_reasons, dup_reasons, signals: Box::leak(signals.into_boxed_slice()), config: self })
    }
}

pub struct GopherRepetition {
    config: GopherRepetitionConfig,
    top_reasons: Vec<&'static str>,
    dup_reasons: Vec<&'static str>,
    /// Leaked once per filter built, like the reasons: a pipeline builds a
    /// handful, and `signal_names` must be `'static`.
    signals: &'static [&'static str],
}

/// Python's `re.split(r"\n{2,}", s)` (`min = 2`) or `re.split("\n+", s)` (`min = 1`).
fn split_newline_runs(s: &str, min: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut at) = (0, 0);
    let bytes = s.as_bytes();
    while let Some(found) = memchr::memchr(b'\n', &bytes[at..]) {
        let run_start = at + found;
        let run = bytes[run_start..].iter().take_while(|&&b| b == b'\n').count();
        at = run_start + run;
        if run >= min {
            parts.push(&s[start..run_start]);
            start = at;
        }
    }
    parts.push(&s[start..]);
    parts
}

impl GopherRepetition {
    fn judge(&self, doc: &Document<'_>, mut r: Rules) -> Verdict {
        let text = doc.text;
        let c = &self.config;
        if text.is_empty() {
            r.check(f64::NAN, true, "empty");
            return r.verdict();
        }
        if c.max_doc_bytes.is_some_and(|max| text.len() > max) {
            r.check(f64::NAN, true, "repetition_doc_too_long");
            return r.verdict();
        }
        let on = |f: Option<f64>| f.filter(|&f| f != 0.0);
        let text_len = len(text) as f64;
        let paragraphs = split_newline_runs(strip(text), 2);
        let (dup_paras, dup_para_chars) = find_duplicates(&paragraphs);
        let frac = dup_paras as f64 / paragraphs.len() as f64;
        if r.check(frac, on(c.dup_para_frac).is_some_and(|f| frac > f), "dup_para_frac") {
            return r.verdict();
        }
        let frac = dup_para_chars as f64 / text_len;
        if r.check(frac, on(c.dup_para_char_frac).is_some_and(|f| frac > f), "dup_para_char_frac") {
            return r.verdict();
        }
        let lines = split_newline_runs(text, 1);
        let (dup_lines, dup_line_chars) = find_duplicates(&lines);
        let frac = dup_lines as f64 / lines.len() as f64;
        if r.check(frac, on(c.dup_line_frac).is_some_and(|f| frac > f), "dup_line_frac") {
            return r.verdict();
        }
        let frac = dup_line_chars as f64 / text_len;
        if r.check(frac, on(c.dup_line_char_frac).is_some_and(|f| frac > f), "dup_line_char_frac") {
            return r.verdict();
        }
        let words = doc.words();
        let grams = NGrams::new(&words);
        for (i, &(n, max)) in c.top_n_grams.iter().enumerate() {
            if !r.measuring() && grams.top_chars_bound(n) as f64 / text_len <= max {
                continue;
            }
            let frac = grams.top_chars(n).map_or(0.0, |chars| chars as f64 / text_len);
            if r.check(frac, frac > max, self.top_reasons[i]) {
                return r.verdict();
            }
        }
        for (i, &(n, max)) in c.dup_n_grams.iter().enumerate() {
            let frac = grams.duplicated_chars(n) as f64 / text_len;
            if r.check(frac, frac > max, self.dup_reasons[i]) {
                return r.verdict();
            }
        }
        r.verdict()
    }
}

impl Filter for GopherRepetition {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        self.judge(doc, Rules::new(measure.signals(), self.signals.len()))
    }

    /// The measurement of each rule, named as its drop reason.
    fn signal_names(&self) -> &'static [&'static str] {
        self.signals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Verdict {
        GopherRepetitionConfig::default().build().unwrap().filter(&Document::text_only(text), Measure::Verdict)
    }

    /// The opening of Moby-Dick (public domain): real prose that passes.
    const PROSE: &str = "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. It is a way I have of driving off the spleen and regulating the circulation. Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul; whenever I find myself involuntarily pausing before coffin warehouses, and bringing up the rear of every funeral I meet; and especially whenever my hypos get such an upper hand of me, that it requires a strong moral principle to prevent me from deliberately stepping into the street, and methodically knocking people's hats off—then, I account it high time to get to sea as soon as I can. This is my substitute for pistol and ball. With a philosophical flourish Cato throws himself upon his sword; I quietly take to the ship. There is nothing surprising in this. If they but knew it, almost all men in their degree, some time or other, cherish very nearly the same feelings towards the ocean with me.";

    /// See: issue 13, defect 8.
    #[test]
    fn r13_a_text_over_the_cap_is_dropped_unmeasured() {
        let capped = GopherRepetitionConfig { max_doc_bytes: Some(100), ..Default::default() }.build().unwrap();
        let mut signals = Vec::new();
        let long = "a ".repeat(60);
        assert_eq!(
            capped.filter(&Document::text_only(&long), Measure::Signals(&mut signals)),
            Verdict::drop("repetition_doc_too_long")
        );
        assert_eq!(signals.len(), capped.signal_names().len());
        assert!(signals.iter().all(|s| s.is_nan()));
        assert_eq!(capped.filter(&Document::text_only(&long[..100]), Measure::Verdict), Verdict::drop("top_2_gram"));
        let uncapped = GopherRepetitionConfig { max_doc_bytes: None, ..Default::default() }.build().unwrap();
        assert_eq!(uncapped.filter(&Document::text_only(&long), Measure::Verdict), Verdict::drop("top_2_gram"));
        assert!(GopherRepetitionConfig { max_doc_bytes: Some(0), ..Default::default() }.validate().is_err());
    }

    #[test]
    fn real_prose_passes() {
        assert_eq!(verdict(PROSE), Verdict::Keep);
    }

    // Expected reasons were checked against datatrove 0.10's GopherRepetitionFilter.
    #[test]
    fn each_rule_fires() {
        assert_eq!(verdict(""), Verdict::drop("empty"));
        assert_eq!(verdict("one para\n\ntwo para\n\none para\n\none para"), Verdict::drop("dup_para_frac"));
        let long = "a long repeated paragraph of some length";
        assert_eq!(
            verdict(&format!("{long}\n\n{long}\n\nx1\n\nx2\n\nx3\n\nx4\n\nx5")),
            Verdict::drop("dup_para_char_frac")
        );
        assert_eq!(verdict("a\nb\na\na\nc"), Verdict::drop("dup_line_frac"));
        assert_eq!(verdict(&format!("{long}\n{long}\nx1\nx2\nx3\nx4\nx5")), Verdict::drop("dup_line_char_frac"));
        assert_eq!(verdict("tiny text"), Verdict::drop("top_2_gram"));
        let repeat = |s: &str, k: usize| format!("{PROSE} {}", s.repeat(k));
        assert_eq!(verdict(&repeat("the same five words here ", 6)), Verdict::Keep);
        assert_eq!(verdict(&repeat("the same five words here ", 10)), Verdict::drop("duplicated_9_n_grams"));
        assert_eq!(verdict(&repeat("the same five words here ", 15)), Verdict::drop("top_4_gram"));
        let sentence = "one two three four five six seven eight nine ten eleven twelve. ";
        assert_eq!(verdict(&repeat(sentence, 3)), Verdict::Keep);
        assert_eq!(verdict(&repeat(sentence, 4)), Verdict::drop("duplicated_10_n_grams"));
        assert_eq!(verdict(&repeat(sentence, 6)), Verdict::drop("duplicated_5_n_grams"));
    }

    #[test]
    fn annotating_measures_every_rule_and_decides_as_filtering_does() {
        let f = GopherRepetitionConfig::default().build().unwrap();
        assert_eq!(f.signal_names().len(), 4 + 3 + 6);
        assert_eq!(f.signal_names()[4], "top_2_gram");
        let sentence = "one two three four five six seven eight nine ten eleven twelve. ";
        for text in ["", "a\nb\na\na\nc", PROSE, &format!("{PROSE} {}", sentence.repeat(6))] {
            let mut signals = vec![];
            let doc = Document::text_only(text);
            assert_eq!(f.filter(&doc, Measure::Signals(&mut signals)), f.filter(&doc, Measure::Verdict), "{text}");
            assert_eq!(signals.len(), 13);
        }
        // Dropped at dup_line_frac (2 of 5 lines repeat), and still measured to the end.
        let mut signals = vec![];
        f.filter(&Document::text_only("a\nb\na\na\nc"), Measure::Signals(&mut signals));
        assert_eq!(signals[2], 0.4);
        assert!(signals[12].is_finite());
    }

    #[test]
    fn splits_paragraphs_and_lines_as_python() {
        assert_eq!(split_newline_runs("a\n\n\nb\nc", 2), ["a", "b\nc"]);
        assert_eq!(split_newline_runs("\na\n\nb", 1), ["", "a", "b"]);
        assert_eq!(split_newline_runs("a\nb\n\n\nc\n", 2), ["a\nb", "c\n"]);
        assert_eq!(split_newline_runs("a\n", 1), ["a", ""]);
    }
}
