//! datatrove's `simplify_text` with its default `TextNormConfig`: the text
//! near-duplicate detection compares, so that case, numbers, punctuation,
//! spacing and accents do not hide a copy.

use std::sync::OnceLock;

use curate_filters::text::CharSet;
use regex::Regex;
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

/// Lower case; numbers to `0`; punctuation to spaces; runs of whitespace to
/// one space, trimmed; NFD with combining marks (category Mn) removed.
pub fn simplify_text(text: &str) -> String {
    let lower = text.to_lowercase();
    let numbered = numbers().replace_all(&lower, "0");
    let spaced: String = numbered.chars().map(|c| if is_normalised_away(c) { ' ' } else { c }).collect();
    let mut single = String::with_capacity(spaced.len());
    for word in spaced.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !single.is_empty() {
            single.push(' ');
        }
        single.push_str(word);
    }
    if single.is_ascii() {
        // ASCII decomposes to itself and has no combining marks.
        return single;
    }
    let stripped: String =
        single.nfd().filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark).collect();
    stripped.trim_matches(char::is_whitespace).to_owned()
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
}
