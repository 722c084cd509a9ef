//! The `decontaminate` step: drops a document that contains any indexed
//! n-gram (datatrove's `NGramsDecontFilter`, reason `contaminated`), naming
//! the first n-gram found and its task in `contaminated_ngram` and
//! `contaminated_task`; or, with `action = "cut"`, removes each match with
//! `window` characters on either side, as GPT-3's filtering did, keeping
//! the pieces of at least `min_piece_chars` characters, and drops the
//! document when it falls into more than `max_pieces` pieces or nothing is
//! left.
//!
//! ```toml
//! [[step]]
//! type = "decontaminate"
//! index = "decont/"     # from `curate decont index`, or datatrove's NGramsDecontIndexer
//! # action = "cut"      # GPT-3's: window = 200, min_piece_chars = 200, max_pieces = 10
//! ```
//!
//! Cutting needs each match's place in the original text: the text is
//! split into words first, and each word normalised and split on its own,
//! so an n-gram is found word by word. Where normalising joins or splits
//! words differently across a word boundary, that can see an n-gram the
//! whole-text split of `drop` does not, or miss one; `drop` is datatrove's.

use serde::Deserialize;
use serde_json::Value;

use curate_filters::{ConfigError, Document, Filter, Measure, Verdict};

use super::index::Index;
use super::ngram_hash;
use crate::dedup::normalize::simplify_text;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Drop,
    Cut,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecontaminateConfig {
    /// The index folder.
    pub index: std::path::PathBuf,
    /// The n-gram length; by default the index's (`index.json`), else 12.
    pub n: Option<usize>,
    #[serde(default)]
    pub action: Action,
    /// Characters removed on either side of a match (`cut`).
    #[serde(default = "two_hundred")]
    pub window: usize,
    /// Pieces shorter than this are removed too (`cut`).
    #[serde(default = "two_hundred")]
    pub min_piece_chars: usize,
    /// A document cut into more pieces is dropped (`cut`).
    #[serde(default = "ten")]
    pub max_pieces: usize,
}

fn two_hundred() -> usize {
    200
}

fn ten() -> usize {
    10
}

pub struct Decontaminate {
    config: DecontaminateConfig,
    n: usize,
    index: Index,
}

/// The first indexed n-gram of a text: its words and its task.
struct Hit {
    ngram: String,
    task: u32,
}

impl Decontaminate {
    pub fn new(config: DecontaminateConfig, index: Index) -> Result<Decontaminate, ConfigError> {
        let n = match (config.n, index.config.map(|c| c.n)) {
            (Some(n), Some(built)) if n != built => {
                return Err(format!("n = {n}, but the index was built with n = {built}").into());
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => super::DEFAULT_N,
        };
        if n == 0 {
            return Err("n must be at least 1".into());
        }
        if config.action == Action::Cut && config.max_pieces == 0 {
            return Err("max_pieces must be at least 1".into());
        }
        Ok(Decontaminate { config, n, index })
    }

    /// datatrove's filter: the first n-gram of the text found in the index.
    fn first_hit(&self, text: &str) -> Option<Hit> {
        let simple = simplify_text(text);
        let words = curate_filters::words::split_into_words(&simple);
        if words.len() < self.n {
            return None;
        }
        // The words joined by single spaces once, so that each n-gram is a
        // slice of it rather than a string built for it.
        let mut joined = String::with_capacity(simple.len() + 1);
        let mut bounds = Vec::with_capacity(words.len());
        for word in &words {
            if !joined.is_empty() {
                joined.push(' ');
            }
            let start = joined.len();
            joined.push_str(word);
            bounds.push((start, joined.len()));
        }
        (0..=words.len() - self.n).find_map(|i| {
            let gram = &joined[bounds[i].0..bounds[i + self.n - 1].1];
            let hash = xxhash_rust::xxh64::xxh64(gram.as_bytes(), 0);
            self.index.hashes.get(&hash).map(|&task| Hit { ngram: gram.to_owned(), task })
        })
    }

    /// GPT-3's cut: the text without the matches and their windows, in
    /// pieces; `None` when there was no match.
    fn cut(&self, text: &str) -> Option<(Vec<String>, Hit)> {
        // Each normalised word with the byte range of the word it came from.
        let mut tokens: Vec<(String, usize, usize)> = Vec::new();
        let base = text.as_ptr() as usize;
        for word in curate_filters::words::split_into_words(text) {
            let start = word.as_ptr() as usize - base;
            for token in curate_filters::words::split_into_words(&simplify_text(word)) {
                tokens.push((token.to_owned(), start, start + word.len()));
            }
        }
        let mut buffer = String::new();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut first = None;
        for (i, gram) in tokens.windows(self.n).enumerate() {
            let words: Vec<&str> = gram.iter().map(|t| t.0.as_str()).collect();
            if let Some(&task) = self.index.hashes.get(&ngram_hash(&words, &mut buffer)) {
                first.get_or_insert_with(|| Hit { ngram: buffer.clone(), task });
                spans.push((tokens[i].1, tokens[i + self.n - 1].2));
            }
        }
        let first = first?;
        // Widen by the window in characters, and merge.
        let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let char_at = |byte: usize| chars.partition_point(|&b| b < byte);
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        for (a, b) in spans {
            let a = chars[char_at(a).saturating_sub(self.config.window)];
            let b = chars[(char_at(b) + self.config.window).min(chars.len() - 1)];
            match cuts.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => cuts.push((a, b)),
            }
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        for (a, b) in cuts.into_iter().chain([(text.len(), text.len())]) {
            let piece = &text[at..a];
            if piece.chars().count() >= self.config.min_piece_chars && !piece.trim().is_empty() {
                pieces.push(piece.to_owned());
            }
            at = b;
        }
        Some((pieces, first))
    }
}

impl Filter for Decontaminate {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let (verdict, hit) = match self.config.action {
            Action::Drop => {
                let hit = self.first_hit(doc.text);
                (if hit.is_some() { Verdict::drop("contaminated") } else { Verdict::Keep }, hit)
            }
            Action::Cut => match self.cut(doc.text) {
                None => (Verdict::Keep, None),
                Some((pieces, hit)) if pieces.is_empty() || pieces.len() > self.config.max_pieces => {
                    (Verdict::drop("contaminated"), Some(hit))
                }
                Some((pieces, hit)) => (Verdict::Rewrite(pieces.join("\n")), Some(hit)),
            },
        };
        if let Measure::Metadata(values) = measure {
            match &hit {
                Some(hit) => values.extend([
                    Value::from(hit.ngram.as_str()),
                    Value::from(self.index.tasks[hit.task as usize].as_str()),
                ]),
                None => values.extend([Value::Null, Value::Null]),
            }
        }
        verdict
    }

    fn metadata_fields(&self) -> Vec<(String, bool)> {
        vec![("contaminated_ngram".into(), false), ("contaminated_task".into(), false)]
    }
}
