//! Bad words and toxicity by word list, as C4's bad-words filter works:
//! a list per language (chosen by a metadata field), matched on word
//! boundaries (`(?:\W|^)word(?:\W|$)` in C4), or as substrings for scripts
//! written without spaces (C4 does so for Japanese, Thai and Chinese), in
//! the lowercased text. A document is dropped when it has more than
//! `max_count` matches (C4: any), or when matches per word exceed
//! `max_ratio`. The lists are given inline; the engine reads list files.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WordListConfig {
    /// The list for documents without a language, or whose language has no list.
    #[serde(default)]
    pub words: Vec<String>,
    /// Lists by language code.
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
    /// Metadata field holding a document's language code.
    #[serde(default = "default_language_field")]
    pub language_field: String,
    /// Languages whose words are matched as substrings (no spaces between words).
    #[serde(default = "default_substring_languages")]
    pub substring_languages: Vec<String>,
    /// More matches than this drops: `word_list_count` (C4: 0, any match).
    #[serde(default)]
    pub max_count: Option<usize>,
    /// Matches per whitespace-separated word above this drops: `word_list_ratio`.
    #[serde(default)]
    pub max_ratio: Option<f64>,
}

fn default_language_field() -> String {
    "language".into()
}

fn default_substring_languages() -> Vec<String> {
    ["ja", "th", "zh"].map(String::from).to_vec()
}

impl FilterConfig for WordListConfig {
    type Filter = WordList;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_count.is_none() && self.max_ratio.is_none() {
            return Err("set max_count (0 drops on any match, as C4) or max_ratio".into());
        }
        // NaN too: it is in no range.
        if let Some(r) = self.max_ratio.filter(|r| !(0.0..=1.0).contains(r)) {
            return Err(format!("max_ratio {r} is not between 0 and 1").into());
        }
        Ok(())
    }

    /// Refuses lists with no word at all (an empty list file, say): such a
    /// filter would keep everything, which is never what was meant.
    fn build(self) -> Result<WordList, ConfigError> {
        if self.words.is_empty() && self.lists.values().all(Vec::is_empty) {
            return Err("give words or lists (or a path the engine reads them from)".into());
        }
        let matcher = |words: &[String], substring: bool| -> Result<Matcher, ConfigError> {
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()))
                .map_err(|e| ConfigError(format!("the word list does not build a matcher: {e}")))?;
            Ok(Matcher { automaton, substring })
        };
        let mut lists = BTreeMap::new();
        for (lang, words) in &self.lists {
            lists.insert(lang.clone(), matcher(words, self.substring_languages.contains(lang))?);
        }
        Ok(WordList { default: matcher(&self.words, false)?, lists, config: self })
    }
}

struct Matcher {
    automaton: AhoCorasick,
    substring: bool,
}

/// Python's `\w`: letters, digits and the underscore (and combining marks).
fn is_word_char(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory::*};
    c.is_alphanumeric() || c == '_' || matches!(get_general_category(c), NonspacingMark | SpacingMark | EnclosingMark)
}

impl Matcher {
    /// Matches in the lowercased text, each flanked by non-word characters
    /// (or the text's ends) unless matching substrings.
    fn count(&self, lower: &str) -> usize {
        self.automaton
            .find_iter(lower)
            .filter(|m| {
                self.substring
                    || (!lower[..m.start()].chars().next_back().is_some_and(is_word_char)
                        && !lower[m.end()..].chars().next().is_some_and(is_word_char))
            })
            .count()
    }
}

pub struct WordList {
    config: WordListConfig,
    default: Matcher,
    lists: BTreeMap<String, Matcher>,
}

impl Filter for WordList {
    fn signal_names(&self) -> &'static [&'static str] {
        &["matches", "ratio"]
    }

    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let language = doc.metadata.field(&self.config.language_field);
        let matcher =
            language.as_ref().and_then(|v| v.as_str()).and_then(|l| self.lists.get(l)).unwrap_or(&self.default);
        let lower = doc.text.to_lowercase();
        let matches = matcher.count(&lower);
        let words = doc.text.split_whitespace().count().max(1);
        let ratio = matches as f64 / words as f64;
        if let Some(signals) = measure.signals() {
            signals.extend([matches as f64, ratio]);
        }
        if self.config.max_count.is_some_and(|max| matches > max) {
            return Verdict::drop("word_list_count");
        }
        if self.config.max_ratio.is_some_and(|max| ratio > max) {
            return Verdict::drop("word_list_ratio");
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    struct Lang(&'static str);
    impl Metadata for Lang {
        fn field(&self, name: &str) -> Option<serde_json::Value> {
            (name == "language").then(|| serde_json::Value::from(self.0))
        }
    }

    fn filter(max_count: Option<usize>, max_ratio: Option<f64>) -> WordList {
        let config = filter_config(max_count, max_ratio);
        config.validate().unwrap();
        config.build().unwrap()
    }

    fn filter_config(max_count: Option<usize>, max_ratio: Option<f64>) -> WordListConfig {
        WordListConfig {
            words: vec!["darn".into(), "heck it".into()],
            lists: BTreeMap::from([("ja".to_owned(), vec!["ばか".to_owned()])]),
            language_field: default_language_field(),
            substring_languages: default_substring_languages(),
            max_count,
            max_ratio,
        }
    }

    fn verdict(f: &WordList, text: &str, lang: &'static str) -> Verdict {
        f.filter(&Document { id: "", text, metadata: &Lang(lang), words: None }, Measure::Verdict)
    }

    #[test]
    fn words_match_on_boundaries_and_phrases_case_blind() {
        let any = filter(Some(0), None);
        assert_eq!(verdict(&any, "Well, DARN.", "en"), Verdict::drop("word_list_count"));
        assert_eq!(verdict(&any, "oh heck it all", "en"), Verdict::drop("word_list_count"));
        assert_eq!(verdict(&any, "darned socks and darning", "en"), Verdict::Keep, "no match inside a word");
        assert_eq!(verdict(&any, "heck itself", "en"), Verdict::Keep);
    }

    #[test]
    fn languages_without_spaces_match_substrings() {
        let any = filter(Some(0), None);
        assert_eq!(verdict(&any, "あなたはばかです", "ja"), Verdict::drop("word_list_count"));
        assert_eq!(verdict(&any, "darn", "ja"), Verdict::Keep, "the Japanese list is used for Japanese");
    }

    #[test]
    fn lists_without_a_word_are_refused_when_built() {
        let empty = WordListConfig { words: Vec::new(), lists: BTreeMap::new(), ..filter_config(Some(0), None) };
        assert!(empty.validate().is_ok(), "validation reads no list");
        assert_eq!(
            empty.build().err().unwrap().to_string(),
            "give words or lists (or a path the engine reads them from)"
        );
    }

    #[test]
    fn count_and_ratio_thresholds_are_strict() {
        let two = filter(Some(2), None);
        assert_eq!(verdict(&two, "darn darn", "en"), Verdict::Keep);
        assert_eq!(verdict(&two, "darn darn darn", "en"), Verdict::drop("word_list_count"));
        let ratio = filter(None, Some(0.25));
        assert_eq!(verdict(&ratio, "darn one two three", "en"), Verdict::Keep);
        assert_eq!(verdict(&ratio, "darn one two", "en"), Verdict::drop("word_list_ratio"));
    }
}
