//! Document filters for curate.
//!
//! A filter is a pure function of one document: it sees the text and the
//! metadata fields, and answers keep or drop with a stable reason. This crate
//! knows nothing of files, Arrow or threads; the engine (crate `curate`) reads
//! documents, calls [`Filter::filter`] for each, and does the counting, the
//! rejected output and the parallelism, as datatrove's `BaseFilter` does.
//! What the engine wants measured besides the verdict is an argument
//! ([`Measure`]) of that one method, so filtering and annotating cannot
//! decide differently.
//!
//! Reasons are `&'static str` in snake_case on purpose: they are stable keys in
//! `stats.json`, in the rejected output and in annotate columns, so a typo in a
//! reason is a breaking change that code review can see.
//!
//! One filter per file, its thresholds in a config struct whose `Default`
//! holds the source's values (`None` turns a rule off).

mod c4_quality;
mod classifier;
pub mod fasttext_model;
mod field_value;
mod fineweb_quality;
mod gopher_quality;
mod gopher_repetition;
mod kneser_ney;
mod language;
mod length;
mod perplexity;
mod pii;
pub mod public_suffix;
mod repeats;
mod rules;
pub mod text;
mod url_filter;
mod word_list;
pub mod words;

pub use c4_quality::{C4Quality, C4QualityConfig};
pub use classifier::{Classifier, ClassifierConfig, Level as ClassifierLevel};
pub use fasttext_model::FastTextModel;
pub use field_value::{FieldValueFilter, FieldValueFilterConfig, Missing};
pub use fineweb_quality::{FineWebQuality, FineWebQualityConfig};
pub use gopher_quality::{GopherQuality, GopherQualityConfig};
pub use gopher_repetition::{GopherRepetition, GopherRepetitionConfig};
pub use kneser_ney::{KneserNey, KneserNeyError};
pub use language::{LanguageConfig, LanguageFilter, LanguageModel};
pub use length::{LengthFilter, LengthFilterConfig};
pub use perplexity::{Model as NgramModel, Perplexity, PerplexityConfig};
pub use pii::{Pii, PiiConfig, PiiKind, Replacement};
pub use url_filter::{UrlFilter, UrlFilterConfig};
pub use word_list::{WordList, WordListConfig};

use std::borrow::Cow;

/// One document as a filter sees it.
pub struct Document<'a> {
    pub id: &'a str,
    pub text: &'a str,
    pub metadata: &'a dyn Metadata,
    /// Where the caller keeps the text's word split between filters (the
    /// engine does, per document); `None` splits afresh each time.
    pub words: Option<&'a WordCache>,
}

/// A document's English word split ([`words::split_into_words`]), made
/// once and shared by every filter that needs it: the Gopher filters and
/// FineWeb's each split the same text otherwise.
///
/// It keeps byte offsets, not slices, so it does not borrow the text, and
/// it remembers which text it split (address and length): a text that was
/// replaced without [`WordCache::clear`] is split afresh, never misread.
#[derive(Debug, Clone, Default)]
pub struct WordCache(std::sync::OnceLock<SplitText>);

#[derive(Debug, Clone)]
struct SplitText {
    address: usize,
    len: usize,
    offsets: Vec<(u32, u32)>,
}

impl SplitText {
    /// Whether this is the split of `text` (and not of a text since replaced).
    fn is_of(&self, text: &str) -> bool {
        self.address == text.as_ptr() as usize && self.len == text.len()
    }
}

impl WordCache {
    /// Forgets the split: call it whenever the text changes.
    pub fn clear(&mut self) {
        self.0 = std::sync::OnceLock::new();
    }
}

/// [`Document::word_iter`]'s words.
pub enum WordIter<'a> {
    Cached(&'a str, std::slice::Iter<'a, (u32, u32)>),
    Split(std::vec::IntoIter<&'a str>),
}

impl<'a> Iterator for WordIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match self {
            WordIter::Cached(text, offsets) => offsets.next().map(|&(a, b)| &text[a as usize..b as usize]),
            WordIter::Split(words) => words.next(),
        }
    }
}

/// Read access to a document's fields other than the text.
pub trait Metadata {
    /// The field's value, or `None` when the document has no such field.
    fn field(&self, name: &str) -> Option<serde_json::Value>;
}

/// No metadata at all: for filters that are called on bare text (tests, bench).
pub struct NoMetadata;

impl Metadata for NoMetadata {
    fn field(&self, _name: &str) -> Option<serde_json::Value> {
        None
    }
}

/// A filter's answer for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Drop, with the rule that fired.
    Drop(Cow<'static, str>),
    /// Keep, with this text instead (C4's line removal, PII redaction).
    Rewrite(String),
}

impl Verdict {
    pub fn drop(reason: &'static str) -> Verdict {
        Verdict::Drop(Cow::Borrowed(reason))
    }
}

/// Why a filter's options are refused, or why what they name (a model's
/// text, word lists) does not make a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError(message.to_owned())
    }
}

/// Refuses a threshold that is not a number or lies outside `range`: a NaN
/// compares false with everything, so its rule would silently never fire
/// (or always), and a negative share drops every document.
pub(crate) fn check_threshold(
    key: &str,
    value: Option<f64>,
    range: std::ops::RangeInclusive<f64>,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if v.is_nan() => Err(format!("{key} is not a number").into()),
        Some(v) if !range.contains(&v) => {
            let (lo, hi) = (range.start(), range.end());
            let within = if hi.is_infinite() { format!("at least {lo}") } else { format!("between {lo} and {hi}") };
            Err(format!("{key} {v} is not {within}").into())
        }
        _ => Ok(()),
    }
}

/// A filter's configuration, as a pipeline step's options: deserialised
/// (unknown keys refused), checked, then turned into the filter.
pub trait FilterConfig: serde::de::DeserializeOwned {
    type Filter: Filter + 'static;
    /// Checks values that the types cannot (bounds in order, known codes),
    /// cheaply: what `curate check` runs, so it builds nothing.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    /// The filter; fails when what the options carry does not make one (a
    /// model's text that does not parse, word lists with no word).
    fn build(self) -> Result<Self::Filter, ConfigError>;
    /// The bounds this configuration puts on the filter's signals, as
    /// (signal name, value), rules turned off left out: what a report
    /// draws on the histogram of an annotated signal.
    fn thresholds(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// The thresholds that are on: `Some` and not 0 (datatrove's `None`).
pub(crate) fn bounds(pairs: &[(&'static str, Option<f64>)]) -> Vec<(&'static str, f64)> {
    pairs.iter().filter_map(|&(signal, v)| v.filter(|&v| v != 0.0).map(|v| (signal, v))).collect()
}

/// What the caller wants besides the verdict.
pub enum Measure<'a> {
    /// The verdict alone: a filter may stop at the first rule that fires.
    Verdict,
    /// Every measurement as a signal: one value per [`Filter::signal_names`]
    /// entry, in order, pushed onto the vector (annotate mode, PII counts).
    Signals(&'a mut Vec<f64>),
    /// One value per [`Filter::metadata_fields`] entry, pushed onto the
    /// vector: how a filter with metadata fields is always called.
    Metadata(&'a mut Vec<serde_json::Value>),
}

impl<'a> Measure<'a> {
    /// The signals vector, when signals are wanted.
    pub fn signals(self) -> Option<&'a mut Vec<f64>> {
        match self {
            Measure::Signals(signals) => Some(signals),
            _ => None,
        }
    }
}

/// The one trait every filter implements. `Send + Sync` because the engine
/// calls one instance from many threads at once.
pub trait Filter: Send + Sync {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict;

    /// Names of the measurements this filter decides by, which annotate
    /// mode writes beside each document (`quality.mean_word_length`).
    fn signal_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the signals are counts worth totalling in the stats even when
    /// not annotating (PII replacements by kind).
    fn sums_signals(&self) -> bool {
        false
    }

    /// Metadata fields this filter sets on every document it sees, as
    /// datatrove's `doc.metadata[...]` (the language and its score): name,
    /// and whether the value is a number (else a string). A filter with
    /// metadata fields reports its measurements through them, in
    /// [`Measure::Metadata`], and has no signals.
    fn metadata_fields(&self) -> Vec<(String, bool)> {
        Vec::new()
    }
}

impl<'a> Document<'a> {
    /// A document with only text, for tests and benchmarks.
    pub fn text_only(text: &'a str) -> Document<'a> {
        Document { id: "", text, metadata: &NoMetadata, words: None }
    }

    /// The text's English words, from the cache when there is one.
    pub fn words(&self) -> Vec<&'a str> {
        match self.cached_split() {
            Some(offsets) => offsets.iter().map(|&(a, b)| &self.text[a as usize..b as usize]).collect(),
            None => words::split_into_words(self.text),
        }
    }

    /// The text's English words one at a time, from the cache when there is
    /// one (without a list of them).
    pub fn word_iter(&self) -> WordIter<'a> {
        match self.cached_split() {
            Some(offsets) => WordIter::Cached(self.text, offsets.iter()),
            None => WordIter::Split(words::split_into_words(self.text).into_iter()),
        }
    }

    /// The cached split of this text (splitting it first), or `None` when
    /// there is no cache or it holds another text's split.
    fn cached_split(&self) -> Option<&'a [(u32, u32)]> {
        let text = self.text;
        let cache = self.words.filter(|_| u32::try_from(text.len()).is_ok())?;
        let split = cache.0.get_or_init(|| SplitText {
            address: text.as_ptr() as usize,
            len: text.len(),
            offsets: words::word_offsets(text),
        });
        split.is_of(text).then_some(&split.offsets[..])
    }

    /// How many words [`Document::words`] has, or `limit` when it has more:
    /// from the cache when it holds this text's split, else by splitting
    /// only as far as the limit.
    pub fn word_count_up_to(&self, limit: usize) -> usize {
        let text = self.text;
        match self.words.and_then(|cache| cache.0.get()) {
            Some(split) if split.is_of(text) => split.offsets.len().min(limit),
            _ => words::count_words_up_to(text, limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_cache_serves_the_text_it_split_and_no_other() {
        let cache = WordCache::default();
        let first = "Don't split me twice, said the whale.";
        let doc = Document { id: "", text: first, metadata: &NoMetadata, words: Some(&cache) };
        let expected = words::split_into_words(first);
        assert_eq!(doc.words(), expected);
        assert_eq!(doc.word_iter().collect::<Vec<_>>(), expected);
        assert_eq!(doc.word_count_up_to(usize::MAX), expected.len());
        assert_eq!(doc.word_count_up_to(3), 3);
        // Another text with the same cache (not cleared): split afresh.
        let second = "A different text entirely.".to_string();
        let doc = Document { id: "", text: &second, metadata: &NoMetadata, words: Some(&cache) };
        assert_eq!(doc.words(), words::split_into_words(&second));
        assert_eq!(doc.word_iter().collect::<Vec<_>>(), words::split_into_words(&second));
        let bare = Document::text_only(first);
        assert_eq!(bare.word_iter().collect::<Vec<_>>(), expected);
        assert_eq!(doc.word_count_up_to(usize::MAX), words::split_into_words(&second).len());
    }
}
