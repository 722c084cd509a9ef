//! FineWeb's own quality rules (Penedo et al. 2024), with datatrove 0.10's
//! thresholds and reason names (`pipeline/filters/fineweb_quality_filter.py`).

use serde::Deserialize;

use crate::gopher_repetition::find_duplicates;
use crate::text::{is_terminal_punctuation, len, strip};
use crate::words::split_into_words;
use crate::{Document, Filter, FilterConfig, Verdict};

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

    fn build(self) -> FineWebQuality {
        FineWebQuality { config: self }
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

impl Filter for FineWebQuality {
    fn filter(&self, doc: &Document<'_>) -> Verdict {
        let c = &self.config;
        let text = doc.text;
        let lines: Vec<&str> = text.split('\n').filter(|l| !strip(l).is_empty()).collect();
        if lines.is_empty() {
            return Verdict::drop("empty");
        }
        let n = lines.len() as f64;
        let punct =
            lines.iter().filter(|l| l.chars().next_back().is_some_and(|ch| self.ends_a_line(ch))).count() as f64 / n;
        if punct < c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero) {
            return Verdict::drop("line_punct_ratio");
        }
        let short = lines.iter().filter(|l| len(l) <= c.short_line_length).count() as f64 / n;
        if short > c.short_line_thr {
            return Verdict::drop("short_line_ratio");
        }
        let (_, dup_chars) = find_duplicates(&lines);
        let chars = text.chars().filter(|&ch| ch != '\n').count();
        if dup_chars as f64 / chars as f64 > c.char_duplicates_ratio {
            return Verdict::drop("char_dup_ratio");
        }
        let words = split_into_words(text).len();
        let newlines = text.matches('\n').count();
        if words > 0 && newlines as f64 / words as f64 > c.new_line_ratio {
            return Verdict::drop("list_ratio");
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Verdict {
        FineWebQualityConfig::default().build().filter(&Document::text_only(text))
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
    }
}
