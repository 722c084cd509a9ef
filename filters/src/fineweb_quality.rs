//! FineWeb's own quality rules (Penedo et al. 2024), with datatrove 0.10's
//! thresholds and reason names (`pipeline/filters/fineweb_quality_filter.py`).

use serde::Deserialize;

use crate::repeats::find_duplicates;
use crate::rules::Rules;
use crate::text::{is_terminal_punctuation, len, strip};
use crate::{check_threshold, ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebQualityConfig {
    /// Share of lines ending in terminal punctuation below: `line_punct_ratio`.
    pub line_punct_thr: f64,
    /// Do not apply `line_punct_thr` to documents with no such line at all.
    pub line_punct_exclude_zero: bool,
    /// Characters that end a line; by default datatrove's terminal punctuation.
    pub stop_chars: Option<String>,
    /// Share of lines of at most `short_line_length` characters above: `short_line_ratio`.
    pub short_line_thr: f64,
    pub short_line_length: usize,
    /// Characters in duplicated lines per character (newlines aside) above: `char_dup_ratio`.
    pub char_duplicates_ratio: f64,
    /// Newlines per word above: `list_ratio`.
    pub new_line_ratio: f64,
}

impl Default for FineWebQualityConfig {
    fn default() -> Self {
        FineWebQualityConfig {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            stop_chars: None,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

impl FilterConfig for FineWebQualityConfig {
    type Filter = FineWebQuality;

    fn thresholds(&self) -> Vec<(&'static str, f64)> {
        crate::bounds(&[
            ("line_punct_ratio", Some(self.line_punct_thr)),
            ("short_line_ratio", Some(self.short_line_thr)),
            ("char_dup_ratio", Some(self.char_duplicates_ratio)),
            ("list_ratio", Some(self.new_line_ratio)),
        ])
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold("line_punct_thr", Some(self.line_punct_thr), 0.0..=1.0)?;
        check_threshold("short_line_thr", Some(self.short_line_thr), 0.0..=1.0)?;
        check_threshold("char_duplicates_ratio", Some(self.char_duplicates_ratio), 0.0..=1.0)?;
        check_threshold("new_line_ratio", Some(self.new_line_ratio), 0.0..=f64::INFINITY)
    }

    fn build(self) -> Result<FineWebQuality, ConfigError> {
        Ok(FineWebQuality { config: self })
    }
}

pub struct FineWebQuality {
    config: FineWebQualityConfig,
}

impl FineWebQuality {
    fn ends_a_line(&self, c: char) -> bool {
        match &self.config.stop_chars {
            Some(chars) => chars.contains(c),
            None => is_terminal_punctuation(c),
        }
    }
}

const SIGNALS: &[&str] = &["line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio"];

impl FineWebQuality {
    fn judge(&self, doc: &Document<'_>, mut r: Rules) -> Verdict {
        let text = doc.text;
        let c = &self.config;
        let lines: Vec<&str> = text.split('\n').filter(|l| !strip(l).is_empty()).collect();
        if lines.is_empty() {
            r.check(f64::NAN, true, "empty");
            return r.verdict();
        }
        let n = lines.len() as f64;
        let punct =
            lines.iter().filter(|l| l.chars().next_back().is_some_and(|ch| self.ends_a_line(ch))).count() as f64 / n;
        if r.check(punct, punct < c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero), "line_punct_ratio")
        {
            return r.verdict();
        }
        let short = lines.iter().filter(|l| len(l) <= c.short_line_length).count() as f64 / n;
        if r.check(short, short > c.short_line_thr, "short_line_ratio") {
            return r.verdict();
        }
        let (_, dup_chars) = find_duplicates(&lines);
        let dup = dup_chars as f64 / text.chars().filter(|&ch| ch != '\n').count() as f64;
        if r.check(dup, dup > c.char_duplicates_ratio, "char_dup_ratio") {
            return r.verdict();
        }
        let newlines = text.matches('\n').count();
        // Filtering counts words only until there are enough for the ratio
        // to stay under the limit whatever follows.
        let enough = if r.measuring() || c.new_line_ratio <= 0.0 {
            usize::MAX
        } else {
            (newlines as f64 / c.new_line_ratio).ceil() as usize + 1
        };
        let words = doc.word_count_up_to(enough);
        let list = newlines as f64 / words as f64;
        r.check(list, words > 0 && list > c.new_line_ratio, "list_ratio");
        r.verdict()
    }
}

impl Filter for FineWebQuality {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        self.judge(doc, Rules::new(measure.signals(), SIGNALS.len()))
    }

    fn signal_names(&self) -> &'static [&'static str] {
        SIGNALS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_bound_signals_the_filter_reports() {
        let config = FineWebQualityConfig { short_line_thr: 0.5, ..Default::default() };
        let thresholds = config.thresholds();
        assert_eq!(thresholds.len(), 4);
        assert!(thresholds.iter().all(|(s, _)| SIGNALS.contains(s)));
        assert!(thresholds.contains(&("short_line_ratio", 0.5)));
    }

    fn verdict(text: &str) -> Verdict {
        FineWebQualityConfig::default().build().unwrap().filter(&Document::text_only(text), Measure::Verdict)
    }

    const LINE: &str = "The captain walked the deck and watched the grey sea for a long while.";

    #[test]
    fn each_rule_fires_on_its_side_of_the_threshold() {
        assert_eq!(
            verdict(&format!("{LINE}\nAnd then the crew sang a song about the whale they hunted.")),
            Verdict::Keep
        );
        assert_eq!(verdict(" \n\n"), Verdict::drop("empty"));
        // 1 of 9 lines ends in punctuation (0.11 < 0.12); 2 of 9 is enough.
        let lines = |ended: usize| -> String {
            (0..9)
                .map(|i| format!("a long enough line number {i} about the sea{}\n", if i < ended { "." } else { "" }))
                .collect()
        };
        assert_eq!(verdict(&lines(1)), Verdict::drop("line_punct_ratio"));
        assert_eq!(verdict(&lines(2)), Verdict::Keep);
        assert_eq!(
            verdict("Short one.\nShort two.\nShort three.\nA line that is long enough to count."),
            Verdict::drop("short_line_ratio")
        );
        assert_eq!(
            verdict(&format!("{LINE}\n{LINE}\nSomething different enough here, said the mate.")),
            Verdict::drop("char_dup_ratio")
        );
        let list: Vec<String> = (0..10).map(|i| format!("Supercalifragilisticexpialidocious{i}.")).collect();
        assert_eq!(verdict(&list.join("\n")), Verdict::drop("list_ratio"));
        // Three newlines: ten words are exactly 0.3 per word, nine are over.
        let line = |i: usize, extra: bool| {
            format!("Supercalifragilisticexpialidocious{i}{}.", if extra { " and" } else { "" })
        };
        let page = |last_extra: bool| [line(0, true), line(1, false), line(2, false), line(3, last_extra)].join("\n");
        assert_eq!(crate::words::split_into_words(&page(true)).len(), 10);
        assert_eq!(verdict(&page(true)), Verdict::Keep);
        assert_eq!(verdict(&page(false)), Verdict::drop("list_ratio"));
    }

    #[test]
    fn annotating_measures_every_rule_and_decides_as_filtering_does() {
        let f = FineWebQualityConfig::default().build().unwrap();
        let texts = [
            format!("{LINE}\n{LINE}\nSomething different enough here, said the mate."),
            "Short one.\nShort two.\nShort three.\nA line that is long enough to count.".to_string(),
            format!("{LINE}\nAnd then the crew sang a song about the whale they hunted."),
            " \n".to_string(),
        ];
        for text in &texts {
            let mut signals = vec![];
            let doc = Document::text_only(text);
            assert_eq!(f.filter(&doc, Measure::Signals(&mut signals)), f.filter(&doc, Measure::Verdict), "{text}");
            assert_eq!(signals.len(), 4);
        }
        let mut signals = vec![];
        f.filter(&Document::text_only(&texts[0]), Measure::Signals(&mut signals));
        // Every line ends in punctuation; the repeated line is 37% of the characters.
        assert_eq!((signals[0], signals[1]), (1.0, 0.0));
        assert!((signals[2] - 0.374).abs() < 1e-3, "{signals:?}");
        // Dropped by short_line_ratio, yet the later rules are measured too.
        let mut signals = vec![];
        assert_eq!(
            f.filter(&Document::text_only(&texts[1]), Measure::Signals(&mut signals)),
            Verdict::drop("short_line_ratio")
        );
        assert_eq!((signals[1], signals[2]), (0.75, 0.0));
        assert!(signals[3] > 0.0 && signals[3] < 0.3, "{signals:?}");
        let mut empty = vec![];
        f.filter(&Document::text_only(" \n"), Measure::Signals(&mut empty));
        assert!(empty.iter().all(|v| v.is_nan()));
    }
}
