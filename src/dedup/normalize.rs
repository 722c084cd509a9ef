//! datatrove's `simplify_text` with its default `TextNormConfig`: the text
//! near-duplicate detection compares, so that case, numbers, punctuation,
//! spacing and accents do not hide a copy.

use std::borrow::Cow;
use std::sync::OnceLock;

use curate_filters::text::CharSet;

use crate::runtime::options::Named;
use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// datatrove's `PUNCTUATION` (`utils/text.py`), which its normalisation
/// turns into spaces: ASCII and CJK punctuation, and control characters.
fn is_normalised_away(c: char) -> bool {
    const MARKS: &str = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»";
    static SET: OnceLock<CharSet> = OnceLock::new();
    let code = c as u32;
    // chr(0..9), chr(11..13), chr(13..32), chr(127..160): every control
    // character but the line feed.
    (code < 32 && code != 10) || (127..160).contains(&code) || SET.get_or_init(|| MARKS.chars().collect()).contains(c)
}

/// Numbers in any script, with one decimal separator, become `0`.
fn numbers() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\p{Nd}+([.,،٫⎖⎗⎘]\p{Nd}+)?").expect("a valid pattern"))
}

/// The steps of datatrove's `TextNormConfig`, with its defaults: which
/// differences between two texts dedup ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextNorm {
    pub lowercase: bool,
    pub norm_whitespace: bool,
    pub remove_punctuation: bool,
    pub norm_unicode_diacritics: bool,
    pub norm_numbers: bool,
    pub norm_weekdays: bool,
    pub norm_monthnames: bool,
}

impl Default for TextNorm {
    fn default() -> Self {
        TextNorm {
            lowercase: true,
            norm_whitespace: true,
            remove_punctuation: true,
            norm_unicode_diacritics: true,
            norm_numbers: true,
            norm_weekdays: false,
            norm_monthnames: false,
        }
    }
}

/// One normalisation step, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormStep {
    Lowercase,
    Whitespace,
    Punctuation,
    Diacritics,
    Numbers,
    Weekdays,
    Months,
    /// No step at all (alone).
    None,
}

impl Named for NormStep {
    const ALL: &'static [Self] = &[
        NormStep::Lowercase,
        NormStep::Whitespace,
        NormStep::Punctuation,
        NormStep::Diacritics,
        NormStep::Numbers,
        NormStep::Weekdays,
        NormStep::Months,
        NormStep::None,
    ];

    fn name(self) -> &'static str {
        match self {
            NormStep::Lowercase => "lowercase",
            NormStep::Whitespace => "whitespace",
            NormStep::Punctuation => "punctuation",
            NormStep::Diacritics => "diacritics",
            NormStep::Numbers => "numbers",
            NormStep::Weekdays => "weekdays",
            NormStep::Months => "months",
            NormStep::None => "none",
        }
    }
}

impl TextNorm {
    /// Whether the step is one of this normalisation's (never `None`).
    pub fn has(&self, step: NormStep) -> bool {
        match step {
            NormStep::Lowercase => self.lowercase,
            NormStep::Whitespace => self.norm_whitespace,
            NormStep::Punctuation => self.remove_punctuation,
            NormStep::Diacritics => self.norm_unicode_diacritics,
            NormStep::Numbers => self.norm_numbers,
            NormStep::Weekdays => self.norm_weekdays,
            NormStep::Months => self.norm_monthnames,
            NormStep::None => false,
        }
    }

    /// Exactly the steps listed.
    pub fn from_steps(steps: &[NormStep]) -> TextNorm {
        let has = |s: NormStep| steps.contains(&s);
        TextNorm {
            lowercase: has(NormStep::Lowercase),
            norm_whitespace: has(NormStep::Whitespace),
            remove_punctuation: has(NormStep::Punctuation),
            norm_unicode_diacritics: has(NormStep::Diacritics),
            norm_numbers: has(NormStep::Numbers),
            norm_weekdays: has(NormStep::Weekdays),
            norm_monthnames: has(NormStep::Months),
        }
    }
}

/// Python's `str.isspace` (and regex `\s`), which also counts \x1c–\x1f.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn weekdays() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new("monday|tuesday|wednesday|thursday|friday|saturday|sunday").expect("a valid pattern"))
}

fn months() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new("january|february|march|april|may|june|july|august|september|october|november|december")
            .expect("a valid pattern")
    })
}

/// datatrove's `simplify_text` with its default `TextNormConfig`: lower
/// case; numbers to `0`; punctuation to spaces; runs of whitespace to one
/// space, trimmed; NFD with combining marks (category Mn) removed.
pub fn simplify_text(text: &str) -> String {
    simplify_text_with(text, &TextNorm::default())
}

/// datatrove's `simplify_text` with the steps of `norm`, in its order.
pub fn simplify_text_with(text: &str, norm: &TextNorm) -> String {
    let mut text: Cow<str> = Cow::Borrowed(text);
    if norm.lowercase {
        text = Cow::Owned(text.to_lowercase());
    }
    for (on, pattern, with) in [
        (norm.norm_numbers, numbers(), "0"),
        (norm.norm_weekdays, weekdays(), "WEEKDAY"),
        (norm.norm_monthnames, months(), "MONTH"),
    ] {
        if on {
            if let Cow::Owned(replaced) = pattern.replace_all(&text, with) {
                text = Cow::Owned(replaced);
            }
        }
    }
    if norm.remove_punctuation {
        text = Cow::Owned(text.chars().map(|c| if is_normalised_away(c) { ' ' } else { c }).collect());
    }
    if norm.norm_whitespace {
        let mut single = String::with_capacity(text.len());
        for word in text.split(is_python_space).filter(|w| !w.is_empty()) {
            if !single.is_empty() {
                single.push(' ');
            }
            single.push_str(word);
        }
        text = Cow::Owned(single);
    }
    if norm.norm_unicode_diacritics && !text.is_ascii() {
        // (ASCII decomposes to itself and has no combining marks.)
        text = Cow::Owned(text.nfd().filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark).collect());
    }
    text.trim_matches(is_python_space).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_punctuation_space_and_accents_are_normalised() {
        assert_eq!(simplify_text("  Héllo,   WORLD!\n\tIt's 3.14 or 42 — café  "), "hello world it s 0 or 0 cafe");
        assert_eq!(simplify_text("١٢٣ apples"), "0 apples");
        assert_eq!(simplify_text("ΟΔΟΣ"), "οδος", "final sigma, as Python lowers it");
        assert_eq!(simplify_text("...!!!"), "");
    }

    // Expected values from datatrove 0.10's simplify_text with the same TextNormConfig.
    #[test]
    fn each_step_can_be_left_out() {
        let text = "  Héllo,   WORLD!\n\tMonday 3 May 2024  ";
        let only = |steps: &[NormStep]| simplify_text_with(text, &TextNorm::from_steps(steps));
        assert_eq!(only(&[]), "Héllo,   WORLD!\n\tMonday 3 May 2024");
        assert_eq!(only(&[NormStep::Lowercase]), "héllo,   world!\n\tmonday 3 may 2024");
        assert_eq!(only(&[NormStep::Whitespace]), "Héllo, WORLD! Monday 3 May 2024");
        assert_eq!(only(&[NormStep::Punctuation, NormStep::Whitespace]), "Héllo WORLD Monday 3 May 2024");
        assert_eq!(only(&[NormStep::Diacritics]), "Hello,   WORLD!\n\tMonday 3 May 2024");
        assert_eq!(only(&[NormStep::Numbers]), "Héllo,   WORLD!\n\tMonday 0 May 0");
        let all =
            [NormStep::Lowercase, NormStep::Whitespace, NormStep::Punctuation, NormStep::Weekdays, NormStep::Months];
        assert_eq!(only(&all), "héllo world WEEKDAY 3 MONTH 2024");
        assert_eq!(
            TextNorm::from_steps(&[
                NormStep::Lowercase,
                NormStep::Whitespace,
                NormStep::Punctuation,
                NormStep::Diacritics,
                NormStep::Numbers
            ]),
            TextNorm::default()
        );
    }
}
