//! Benchmark decontamination by n-grams, as datatrove's
//! `NGramsDecontIndexer` and `NGramsDecontFilter` do it (and GPT-3's
//! variant that cuts the match out instead of dropping the document).
//!
//! `curate decont index` hashes the word n-grams of benchmark answers (and
//! those spanning question and answer, or of questions alone, by option)
//! into one file per task, `<task>.index.hashes`: native little-endian
//! uint64, the layout datatrove writes, so an index either tool built
//! serves the other. The `decontaminate` step hashes every n-gram of each
//! document the same way and looks them up.
//!
//! The text goes through datatrove's `simplify_text` (dedup's
//! normalisation) and the spaCy-style English word split of the quality
//! filters; an n-gram is its words joined by spaces, hashed with xxh64 as
//! datatrove's default `HashConfig` does.

pub mod index;
pub mod step;

use xxhash_rust::xxh64::xxh64;

use crate::dedup::normalize::simplify_text;

/// datatrove's `NGramsDecontConfig.n_grams` default.
pub const DEFAULT_N: usize = 12;

/// The words of `text` as the index and the filter see them.
pub fn words(text: &str) -> Vec<String> {
    curate_filters::words::split_into_words(&simplify_text(text)).into_iter().map(str::to_owned).collect()
}

/// The hash of one n-gram (its words joined by single spaces), reusing `buffer`.
pub fn ngram_hash(words: &[impl AsRef<str>], buffer: &mut String) -> u64 {
    buffer.clear();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            buffer.push(' ');
        }
        buffer.push_str(w.as_ref());
    }
    xxh64(buffer.as_bytes(), 0)
}
