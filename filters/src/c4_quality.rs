//! C4's line and page rules (Raffel et al. 2020; TensorFlow Datasets'
//! `c4_utils.py`), as datatrove 0.10 applies them
//! (`pipeline/filters/c4_filters.py`): lines that fail are removed from the
//! text, pages that fail are dropped. The bad-words rule is a separate
//! word-list step.

use std::borrow::Cow;

use serde::Deserialize;

use crate::text::{split_lines, strip};
use crate::words::count_sentences_up_to;
use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

/// Lines mentioning these are boilerplate (cookie banners, legal footers).
const POLICY_SUBSTRINGS: &[&str] =
    &["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct C4QualityConfig {
    /// Judge lines (C4); `false` judges sentences instead.
    pub split_paragraph: bool,
    /// Remove Wikipedia-style citations: `[1]`, `[edit]`, `[citation needed]`.
    pub remove_citations: bool,
    /// Remove lines that do not end in `.`, `?`, `!`, `"` or `'` (or end in `...`).
    pub filter_no_terminal_punct: bool,
    /// Fewer sentences in the kept lines drops the page: `too_few_sentences` (-1: off).
    pub min_num_sentences: i64,
    /// Remove lines with fewer words (-1: off).
    pub min_words_per_line: i64,
    /// Remove lines with a longer word (-1: off).
    pub max_word_length: i64,
    /// Drop pages with "lorem ipsum": `lorem_ipsum`.
    pub filter_lorem_ipsum: bool,
    /// Remove lines mentioning "javascript".
    pub filter_javascript: bool,
    /// Drop pages with a `{` in a kept line: `curly_bracket`.
    pub filter_curly_bracket: bool,
    /// Remove lines with cookie and terms-of-use phrases.
    pub filter_policy: bool,
}

impl Default for C4QualityConfig {
    fn default() -> Self {
        C4QualityConfig {
            split_paragraph: true,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

impl FilterConfig for C4QualityConfig {
    type Filter = C4Quality;

    fn build(self) -> Result<C4Quality, ConfigError> {
        let phrases = ["lorem ipsum", "javascript"].iter().chain(POLICY_SUBSTRINGS);
        let phrases = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(phrases)
            .expect("fixed ASCII patterns");
        Ok(C4Quality { config: self, phrases })
    }
}

pub struct C4Quality {
    config: C4QualityConfig,
    /// Every phrase the line rules look for in lower case, matched without
    /// regard to ASCII case: an ASCII line that holds none of them needs no
    /// lower-case copy (most lines).
    phrases: aho_corasick::AhoCorasick,
}

/// Removes `\[\d*]`, `[edit]` and `[citation needed]`, as datatrove's
/// `CITATION_REGEX.sub("", line)` does (`\d`: any Unicode decimal digit).
fn remove_citations(line: &str) -> Cow<'_, str> {
    if !line.contains('[') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits =
            after.len() - after.trim_start_matches(|c: char| c.is_numeric() && crate::text::is_decimal(c)).len();
        let skip = if after[digits..].starts_with(']') {
            Some(digits + 1)
        } else if after.starts_with("edit]") {
            Some(5)
        } else if after.starts_with("citation needed]") {
            Some(16)
        } else {
            None
        };
        match skip {
            Some(n) => rest = &after[n..],
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Python's `str.split()`: words separated by runs of whitespace.
fn python_words(line: &str) -> impl Iterator<Item = &str> {
    line.split(crate::text::is_space).filter(|w| !w.is_empty())
}

/// How many `python_words` a line has, and the longest one's characters.
fn word_count_and_longest(line: &str) -> (usize, usize) {
    if line.is_ascii() {
        // ASCII whitespace as `str.split()` sees it: \t-\r, \x1c-\x1f and space.
        let space = |b: &u8| matches!(b, 9..=13 | 28..=32);
        return line
            .as_bytes()
            .split(space)
            .filter(|w| !w.is_empty())
            .fold((0, 0), |(n, longest), w| (n + 1, longest.max(w.len())));
    }
    python_words(line).fold((0, 0), |(n, longest), w| (n + 1, longest.max(w.chars().count())))
}

const SIGNALS: &[&str] = &["lines", "kept_lines", "sentences", "lorem_ipsum", "curly_bracket"];

impl Filter for C4Quality {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        self.judge(doc, measure.signals())
    }

    /// Lines (or sentences) read and kept, sentences counted in the kept
    /// lines, and whether lorem ipsum or a curly bracket was seen (0 or 1).
    fn signal_names(&self) -> &'static [&'static str] {
        SIGNALS
    }
}

impl C4Quality {
    /// Filtering (`signals` is None) returns at the first page-level rule
    /// that fires, as datatrove does; annotating reads on to measure the
    /// whole page and reports that same first rule.
    fn judge(&self, doc: &Document<'_>, signals: Option<&mut Vec<f64>>) -> Verdict {
        let c = &self.config;
        let measuring = signals.is_some();
        let mut fired: Option<&'static str> = None;
        let (mut lorem, mut curly) = (false, false);
        let units: Vec<Cow<str>> = if c.split_paragraph {
            split_lines(doc.text).into_iter().map(Into::into).collect()
        } else {
            sentences(doc.text).into_iter().map(Into::into).collect()
        };
        let mut sentences_kept = 0;
        let mut kept: Vec<Cow<str>> = Vec::new();
        for unit in &units {
            let line = strip(unit);
            let (words, longest) = word_count_and_longest(line);
            if c.max_word_length != -1 && longest as i64 > c.max_word_length {
                continue;
            }
            let line = if c.remove_citations { remove_citations(line) } else { Cow::Borrowed(line) };
            let ends_well = [".", "?", "!", "\"", "'"].iter().any(|p| line.ends_with(p)) && !line.ends_with("...");
            if c.filter_no_terminal_punct && !ends_well {
                continue;
            }
            if (words as i64) < c.min_words_per_line {
                continue;
            }
            // Only a line that may hold a phrase gets the lower-case copy the
            // phrase rules read (a non-ASCII line always: lower-casing
            // can turn other letters into ASCII ones, like K into k).
            let may_hold_phrase = !line.is_ascii() || self.phrases.is_match(line.as_ref());
            let lower = if may_hold_phrase { line.to_lowercase() } else { String::new() };
            if c.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                lorem = true;
                fired = fired.or(Some("lorem_ipsum"));
                if !measuring {
                    break;
                }
                continue;
            }
            if c.filter_javascript && lower.contains("javascript") {
                continue;
            }
            if c.filter_curly_bracket && line.contains('{') {
                curly = true;
                fired = fired.or(Some("curly_bracket"));
                if !measuring {
                    break;
                }
                continue;
            }
            if c.filter_policy && POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
                continue;
            }
            // Filtering needs only to know whether the page reaches the
            // minimum: past it, the (costly) sentence split is skipped.
            if c.min_num_sentences != -1 && (measuring || (sentences_kept as i64) < c.min_num_sentences) {
                // Filtering needs to know only whether the page reaches the minimum.
                let needed =
                    if measuring { usize::MAX } else { (c.min_num_sentences - sentences_kept as i64) as usize };
                sentences_kept += if c.split_paragraph { count_sentences_up_to(&line, needed) } else { 1 };
            }
            kept.push(line);
        }
        if let Some(signals) = signals {
            let flag = |b: bool| if b { 1.0 } else { 0.0 };
            signals.extend([units.len() as f64, kept.len() as f64, sentences_kept as f64, flag(lorem), flag(curly)]);
        }
        if let Some(reason) = fired {
            return Verdict::drop(reason);
        }
        if (sentences_kept as i64) < c.min_num_sentences {
            return Verdict::drop("too_few_sentences");
        }
        let joined = kept.join(if c.split_paragraph { "\n" } else { " " });
        let text = strip(&joined);
        if text == doc.text {
            Verdict::Keep
        } else if text.len() == joined.len() {
            Verdict::Rewrite(joined)
        } else {
            Verdict::Rewrite(text.to_owned())
        }
    }
}

/// datatrove's `split_into_sentences`: the text cut where spaCy's
/// Sentencizer starts each sentence, whitespace kept with the sentence before.
fn sentences(text: &str) -> Vec<String> {
    let mut cuts = crate::words::sentence_starts(text);
    cuts.push(text.len());
    cuts.windows(2).map(|w| text[w[0]..w[1]].to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_word_pass_counts_as_str_split() {
        for line in ["", "a", "  two words ", "tab\tsep\x1cfs\x1fus\x0bvt", "ünï code\u{a0}nbsp", "x\u{2003}em"] {
            let expected =
                (python_words(line).count(), python_words(line).map(|w| w.chars().count()).max().unwrap_or(0));
            assert_eq!(word_count_and_longest(line), expected, "{line:?}");
        }
    }

    fn verdict(text: &str) -> Verdict {
        C4QualityConfig::default().build().unwrap().filter(&Document::text_only(text), Measure::Verdict)
    }

    const GOOD: &str = "The whale rose from the sea. The crew cheered loudly. The captain smiled at last.\n\
        Then the storm came in. Everyone ran below deck.";

    // Expected results were checked against datatrove 0.10's C4QualityFilter.
    #[test]
    fn good_pages_pass_and_bad_lines_are_removed() {
        assert_eq!(verdict(GOOD), Verdict::Keep);
        let messy = format!("Home | About\n{GOOD}\nWe use cookies to improve the site.\nEnable JavaScript to see this page.\nShort line.");
        assert_eq!(verdict(&messy), Verdict::Rewrite(GOOD.to_owned()));
        assert_eq!(
            verdict("See the notes [1] and [edit] here and there.\nOne. Two. Three. Four and five."),
            Verdict::Rewrite("See the notes  and  here and there.\nOne. Two. Three. Four and five.".to_owned())
        );
    }

    #[test]
    fn page_rules_drop() {
        assert_eq!(verdict("Only one sentence here."), Verdict::drop("too_few_sentences"));
        assert_eq!(verdict(&format!("{GOOD}\nLorem ipsum dolor sit amet.")), Verdict::drop("lorem_ipsum"));
        assert_eq!(verdict(&format!("{GOOD}\nfunction f() {{ return 1; }}.")), Verdict::drop("curly_bracket"));
    }

    #[test]
    fn annotating_reads_the_whole_page_and_decides_as_filtering_does() {
        let f = C4QualityConfig::default().build().unwrap();
        let texts = [
            GOOD.to_string(),
            format!("Home | About\n{GOOD}\nWe use cookies to improve the site."),
            format!("Lorem ipsum dolor sit amet.\n{GOOD}\nfunction f() {{ return 1; }}."),
            "Only one sentence here.".to_string(),
        ];
        for text in &texts {
            let mut signals = vec![];
            let doc = Document::text_only(text);
            assert_eq!(f.filter(&doc, Measure::Signals(&mut signals)), f.filter(&doc, Measure::Verdict), "{text}");
            assert_eq!(signals.len(), SIGNALS.len());
        }
        let mut signals = vec![];
        f.filter(&Document::text_only(&texts[2]), Measure::Signals(&mut signals));
        // 4 lines; the two of GOOD kept with their 5 sentences; both page rules seen.
        assert_eq!(signals, [4.0, 2.0, 5.0, 1.0, 1.0]);
    }

    #[test]
    fn citations_are_removed_like_the_regex() {
        assert_eq!(remove_citations("a[12]b[]c[edit]d[citation needed]e[x]f["), "abcdex]f[".replace("x]", "[x]"));
    }
}
