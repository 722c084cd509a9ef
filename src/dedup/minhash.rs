//! MinHash signatures as datatrove's `MinhashDedupSignature` computes them,
//! so that signatures, buckets and duplicate clusters agree with a
//! datatrove run on the same documents and parameters.
//!
//! A document's shingles are the 64-bit xxHash of each n-gram of its words
//! (English words as spaCy splits them, after datatrove's `simplify_text`), joined by
//! spaces. Each of `bands × rows` hash functions is `(a·x + b) mod 2⁶¹−1`
//! with the products wrapping at 2⁶⁴ as numpy's uint64 arithmetic does, its
//! `a` and `b` drawn from numpy's `RandomState(seed)`; the signature is the
//! minimum of each over the shingles.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;
use xxhash_rust::xxh64::xxh64;

use super::mt19937::RandomState;
use super::normalize::{simplify_text_with, NormStep, TextNorm};
use super::simhash;
use crate::runtime::options::Named;

const MERSENNE_PRIME: u64 = (1 << 61) - 1;

/// What a signature is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// MinHash of word n-grams: near-duplicates.
    #[default]
    Minhash,
    /// xxh3-128 of the text after datatrove's normalisation: copies that
    /// differ only in case, numbers, punctuation, spacing or accents.
    Exact,
    /// xxh3-128 of the text as it is: byte-identical copies.
    ExactRaw,
    /// SimHash of word n-grams: near-duplicates within a Hamming distance.
    Simhash,
}

impl Named for Method {
    const ALL: &'static [Self] = &[Method::Minhash, Method::Simhash, Method::Exact, Method::ExactRaw];

    fn name(self) -> &'static str {
        match self {
            Method::Minhash => "minhash",
            Method::Exact => "exact",
            Method::ExactRaw => "exact-raw",
            Method::Simhash => "simhash",
        }
    }
}

/// What a shingle is made of: `n_grams` consecutive words (datatrove's
/// choice), or `n_grams` consecutive characters of the normalised text
/// (for text without word boundaries, or to catch edits within words).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shingles {
    #[default]
    Words,
    Chars,
}

impl Named for Shingles {
    const ALL: &'static [Self] = &[Shingles::Words, Shingles::Chars];

    fn name(self) -> &'static str {
        match self {
            Shingles::Words => "words",
            Shingles::Chars => "chars",
        }
    }
}

/// More hash functions than this are refused: each costs 8 bytes per
/// document in every signature file (datatrove's default is 112).
pub const MAX_HASHES: usize = 1 << 20;

/// Parameters that cannot make signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("n_grams ({n_grams}), bands ({bands}) and rows ({rows}) must each be at least 1")]
    Zero { n_grams: usize, bands: usize, rows: usize },
    #[error("{bands} bands × {rows} rows are too many hash functions")]
    TooMany { bands: usize, rows: usize },
    #[error("SimHash's blocks ({blocks}) must exceed its max_distance ({max_distance}) and be at most 64")]
    Blocks { blocks: u32, max_distance: u32 },
}

/// datatrove's `MinhashConfig` defaults: word 5-grams, 14 bands of 8 rows,
/// seed 1, 64-bit xxHash. Exact methods use one band of two rows (the two
/// halves of a 128-bit hash). SimHash uses one band per table of
/// [`simhash::table_masks`]`(blocks, max_distance)`, of two rows: the
/// table's key and the whole fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinHashConfig {
    pub method: Method,
    /// What differences between texts are ignored (MinHash, SimHash and `exact`).
    pub norm: TextNorm,
    pub shingles: Shingles,
    pub n_grams: usize,
    pub bands: usize,
    pub rows: usize,
    pub seed: u32,
    /// SimHash only (0 otherwise): the largest Hamming distance of a near-duplicate.
    pub max_distance: u32,
    /// SimHash only (0 otherwise): the blocks the fingerprint is cut into.
    pub blocks: u32,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig {
            method: Method::Minhash,
            norm: TextNorm::default(),
            shingles: Shingles::Words,
            n_grams: 5,
            bands: 14,
            rows: 8,
            seed: 1,
            max_distance: 0,
            blocks: 0,
        }
    }
}

/// As a person reads it: `minhash of 5-word shingles, 14 bands × 8 rows,
/// seed 1, text normalised by lowercase, whitespace, ...`.
impl std::fmt::Display for MinHashConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let unit = match self.shingles {
            Shingles::Words => "word",
            Shingles::Chars => "character",
        };
        write!(
            f,
            "{} of {}-{unit} shingles, {} bands × {} rows, seed {}",
            self.method.name(),
            self.n_grams,
            self.bands,
            self.rows,
            self.seed
        )?;
        if self.method == Method::Simhash {
            write!(f, ", {} blocks, distance {}", self.blocks, self.max_distance)?;
        }
        let steps: Vec<&str> = NormStep::ALL.iter().copied().filter(|&s| self.norm.has(s)).map(Named::name).collect();
        match steps.as_slice() {
            [] => write!(f, ", text not normalised"),
            steps => write!(f, ", text normalised by {}", steps.join(", ")),
        }
    }
}

impl MinHashConfig {
    /// Checks what the types cannot: every parameter a signature depends on
    /// can make one.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let (n_grams, bands, rows) = (self.n_grams, self.bands, self.rows);
        if n_grams == 0 || bands == 0 || rows == 0 {
            return Err(ParamsError::Zero { n_grams, bands, rows });
        }
        if bands.checked_mul(rows).is_none_or(|hashes| hashes > MAX_HASHES) {
            return Err(ParamsError::TooMany { bands, rows });
        }
        if self.method == Method::Simhash {
            simhash::table_masks(self.blocks, self.max_distance)?;
        }
        Ok(())
    }

    /// Bands and rows for a target Jaccard similarity `threshold` within
    /// `hashes` functions in all: the split whose S-curve
    /// `1 − (1 − s^rows)^bands` crosses one half nearest the threshold.
    pub fn for_threshold(threshold: f64, hashes: usize) -> (usize, usize) {
        (1..=hashes.max(1))
            .filter(|rows| hashes.is_multiple_of(*rows))
            .map(|rows| (hashes / rows, rows))
            .min_by(|&(b1, r1), &(b2, r2)| {
                let midpoint = |b: usize, r: usize| (1.0 - 0.5f64.powf(1.0 / b as f64)).powf(1.0 / r as f64);
                (midpoint(b1, r1) - threshold).abs().total_cmp(&(midpoint(b2, r2) - threshold).abs())
            })
            .expect("1 divides any number of hashes, and there is at least one")
    }
}

/// `x mod (2⁶¹ − 1)` without a division: `x = hi·2⁶¹ + lo ≡ hi + lo`, and
/// `hi + lo < 2p` needs at most one subtraction.
fn mod_mersenne(x: u64) -> u64 {
    let r = (x & MERSENNE_PRIME) + (x >> 61);
    if r >= MERSENNE_PRIME {
        r - MERSENNE_PRIME
    } else {
        r
    }
}

/// Each hash function's minimum over the shingles: the signature's inner
/// loop, written so that the compiler vectorises it.
#[inline(always)]
fn fold_minimums(shingles: &[u64], a: &[u64], b: &[u64], minimums: &mut [u64]) {
    for &s in shingles {
        for ((m, &a), &b) in minimums.iter_mut().zip(a).zip(b) {
            *m = (*m).min(mod_mersenne(s.wrapping_mul(a).wrapping_add(b)));
        }
    }
}

/// [`fold_minimums`] with 64-bit vector multiplies (AVX-512DQ's `vpmullq`),
/// which baseline x86-64 lacks: eight hash functions per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
#[allow(unsafe_code)]
unsafe fn fold_minimums_avx512(shingles: &[u64], a: &[u64], b: &[u64], minimums: &mut [u64]) {
    fold_minimums(shingles, a, b, minimums)
}

/// [`fold_minimums`], with AVX-512 when this CPU has both features
/// [`fold_minimums_avx512`] is compiled for; returns whether it had them.
#[allow(unsafe_code)]
fn fold_minimums_fastest(shingles: &[u64], a: &[u64], b: &[u64], minimums: &mut [u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq") {
        // SAFETY: the CPU has both target features the function enables, checked just above.
        unsafe { fold_minimums_avx512(shingles, a, b, minimums) };
        return true;
    }
    fold_minimums(shingles, a, b, minimums);
    false
}

pub struct MinHasher {
    config: MinHashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
    /// SimHash's table keys.
    masks: Vec<u64>,
}

impl MinHasher {
    pub fn new(config: MinHashConfig) -> Result<MinHasher, ParamsError> {
        config.validate()?;
        let hashes = config.bands * config.rows;
        let mut random = RandomState::new(config.seed);
        let a = (0..hashes).map(|_| random.randint_u64(1, MERSENNE_PRIME)).collect();
        let b = (0..hashes).map(|_| random.randint_u64(0, MERSENNE_PRIME)).collect();
        let masks = match config.method {
            Method::Simhash => simhash::table_masks(config.blocks, config.max_distance)?,
            _ => Vec::new(),
        };
        Ok(MinHasher { config, a, b, masks })
    }

    /// The hashed word n-grams of `text`; none when it has fewer than
    /// `n_grams` words (datatrove then writes no signature: the document is
    /// never a duplicate).
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let simple = simplify_text_with(text, &self.config.norm);
        if self.config.shingles == Shingles::Chars {
            // Each window of n characters, as a slice of the normalised text.
            let n = self.config.n_grams;
            let starts: Vec<usize> = simple.char_indices().map(|(i, _)| i).chain([simple.len()]).collect();
            return starts.windows(n + 1).map(|w| xxh64(&simple.as_bytes()[w[0]..w[n]], 0)).collect();
        }
        let words = curate_filters::words::split_into_words(&simple);
        let n = self.config.n_grams;
        let mut gram = String::new();
        words
            .windows(n)
            .map(|window| {
                gram.clear();
                for (i, w) in window.iter().enumerate() {
                    if i > 0 {
                        gram.push(' ');
                    }
                    gram.push_str(w);
                }
                xxh64(gram.as_bytes(), 0)
            })
            .collect()
    }

    /// `bands × rows` minimum hashes, band after band; `None` without
    /// shingles. For the exact methods, the two halves of the text's
    /// xxh3-128; `None` for a text that normalises to nothing.
    pub fn signature(&self, text: &str) -> Option<Vec<u64>> {
        let exact = |text: &str| {
            let h = xxh3_128(text.as_bytes());
            (!text.is_empty()).then(|| vec![(h >> 64) as u64, h as u64])
        };
        match self.config.method {
            Method::Minhash => {}
            Method::Exact => return exact(&simplify_text_with(text, &self.config.norm)),
            Method::ExactRaw => return exact(text),
            Method::Simhash => {
                let f = simhash::fingerprint(&self.shingles(text))?;
                return Some(self.masks.iter().flat_map(|m| [f & m, f]).collect());
            }
        }
        let shingles = self.shingles(text);
        if shingles.is_empty() {
            return None;
        }
        let mut minimums = vec![u64::MAX; self.a.len()];
        fold_minimums_fastest(&shingles, &self.a, &self.b, &mut minimums);
        Some(minimums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_copies_share_most_hashes_and_strangers_few() {
        let h = MinHasher::new(MinHashConfig::default()).unwrap();
        let base = "The whale rose slowly from the grey water while the crew watched from the deck of the ship, \
                    and nobody said a word until the captain turned and walked back to his cabin below.";
        let near = base.replace("grey", "dark");
        let other = "Congress shall make no law respecting an establishment of religion, or prohibiting the free \
                     exercise thereof; or abridging the freedom of speech, or of the press.";
        let agree = |x: &[u64], y: &[u64]| x.iter().zip(y).filter(|(a, b)| a == b).count();
        let (s, n, o) = (h.signature(base).unwrap(), h.signature(&near).unwrap(), h.signature(other).unwrap());
        assert_eq!(s.len(), 112);
        assert!(agree(&s, &n) > 60, "{}", agree(&s, &n));
        assert!(agree(&s, &o) < 5, "{}", agree(&s, &o));
        assert_eq!(h.signature(&base.to_uppercase()), Some(s), "case does not matter");
        assert_eq!(h.signature("too few words here"), None);
    }

    #[test]
    fn the_modulus_matches_division() {
        for x in [0, 1, MERSENNE_PRIME - 1, MERSENNE_PRIME, MERSENNE_PRIME + 1, u64::MAX, u64::MAX - 7, 1 << 63] {
            assert_eq!(mod_mersenne(x), x % MERSENNE_PRIME, "{x}");
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            assert_eq!(mod_mersenne(x), x % MERSENNE_PRIME);
        }
    }

    #[test]
    fn the_vector_and_scalar_loops_agree() {
        let h = MinHasher::new(MinHashConfig::default()).unwrap();
        let shingles = h.shingles(&"the quick brown fox jumps over the lazy dog again and again ".repeat(20));
        let mut scalar = vec![u64::MAX; 112];
        fold_minimums(&shingles, &h.a, &h.b, &mut scalar);
        let mut fastest = vec![u64::MAX; 112];
        if !fold_minimums_fastest(&shingles, &h.a, &h.b, &mut fastest) {
            eprintln!(
                "the_vector_and_scalar_loops_agree: AVX-512 comparison skipped: this CPU lacks avx512f or avx512dq"
            );
        }
        assert_eq!(scalar, fastest);
        assert!(scalar.iter().all(|&m| m < MERSENNE_PRIME));
    }

    #[test]
    fn character_shingles_are_windows_of_the_normalised_text() {
        let chars =
            MinHasher::new(MinHashConfig { shingles: Shingles::Chars, n_grams: 3, ..Default::default() }).unwrap();
        // "Ab, cd!" normalises to "ab cd": windows "ab ", "b c", " cd".
        let expected: Vec<u64> = ["ab ", "b c", " cd"].iter().map(|w| xxh64(w.as_bytes(), 0)).collect();
        assert_eq!(chars.shingles("Ab, cd!"), expected);
        assert_eq!(chars.shingles("ab"), Vec::<u64>::new());
        assert_eq!(chars.shingles("日本語の文").len(), 3, "characters, not bytes");
        // An edit inside one word keeps most character shingles, and no word 5-gram of a short text.
        let (a, b) = ("the quick brown fox jumps", "the quick brawn fox jumps");
        let shared = chars.shingles(a).iter().filter(|s| chars.shingles(b).contains(s)).count();
        assert!(shared >= 17, "{shared}");
        assert_eq!(chars.signature("ab"), None);
    }

    #[test]
    fn exact_methods_hash_the_normalised_or_the_raw_text() {
        let exact =
            MinHasher::new(MinHashConfig { method: Method::Exact, bands: 1, rows: 2, ..Default::default() }).unwrap();
        let raw = MinHasher::new(MinHashConfig { method: Method::ExactRaw, bands: 1, rows: 2, ..Default::default() })
            .unwrap();
        let (a, b) = ("Café, 1999!", "cafe  2024");
        assert_eq!(exact.signature(a), exact.signature(b));
        assert_ne!(raw.signature(a), raw.signature(b));
        assert_eq!(raw.signature(a).unwrap().len(), 2);
        assert_eq!(exact.signature("..."), None);
    }

    #[test]
    fn bands_and_rows_follow_the_threshold() {
        // datatrove's 14 × 8 has its midpoint near 0.72.
        assert_eq!(MinHashConfig::for_threshold(0.72, 112), (14, 8));
        let (b, r) = MinHashConfig::for_threshold(0.9, 112);
        assert!(r > 8 && b * r == 112, "{b} × {r}");
    }
}
