//! Gopher's repetition rules (Rae et al. 2021, table A1): duplicated
//! paragraphs, lines and n-grams, with datatrove 0.10's thresholds, order
//! of checks and reason names (`pipeline/filters/gopher_repetition_filter.py`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use xxhash_rust::xxh3::xxh3_64;

use serde::Deserialize;

use crate::rules::Rules;
use crate::text::{len, strip};
use crate::{Document, Filter, FilterConfig, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetitionConfig {
    /// Share of duplicated lines above: `dup_line_frac`.
    pub dup_line_frac: Option<f64>,
    /// Share of duplicated paragraphs above: `dup_para_frac`.
    pub dup_para_frac: Option<f64>,
    /// Characters in duplicated lines, per character of text, above: `dup_line_char_frac`.
    pub dup_line_char_frac: Option<f64>,
    /// Characters in duplicated paragraphs, per character, above: `dup_para_char_frac`.
    pub dup_para_char_frac: Option<f64>,
    /// `[n, fraction]`: characters of the most frequent word n-gram (times
    /// its count) per character above the fraction: `top_{n}_gram`.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `[n, fraction]`: characters in repeated word n-grams per character
    /// above the fraction: `duplicated_{n}_n_grams`.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        GopherRepetitionConfig {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

impl FilterConfig for GopherRepetitionConfig {
    type Filter = GopherRepetition;

    fn validate(&self) -> Result<(), String> {
        if let Some((n, _)) = self.top_n_grams.iter().chain(&self.dup_n_grams).find(|(n, _)| *n == 0 || *n > 64) {
            return Err(format!("n-gram size {n} is not between 1 and 64"));
        }
        Ok(())
    }

    fn build(self) -> GopherRepetition {
        let reasons = |prefix: &str, suffix: &str, list: &[(usize, f64)]| -> Vec<&'static str> {
            list.iter().map(|(n, _)| &*Box::leak(format!("{prefix}{n}{suffix}").into_boxed_str())).collect()
        };
        let top_reasons = reasons("top_", "_gram", &self.top_n_grams);
        let dup_reasons = reasons("duplicated_", "_n_grams", &self.dup_n_grams);
        let signals = ["dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
            .into_iter()
            .chain(top_reasons.iter().copied())
            .chain(dup_reasons.iter().copied())
            .collect::<Vec<_>>();
        GopherRepetition { top_reasons, dup_reasons, signals: Box::leak(signals.into_boxed_slice()), config: self }
    }
}

pub struct GopherRepetition {
    config: GopherRepetitionConfig,
    top_reasons: Vec<&'static str>,
    dup_reasons: Vec<&'static str>,
    /// Leaked once per filter built, like the reasons: a pipeline builds a
    /// handful, and `signal_names` must be `'static`.
    signals: &'static [&'static str],
}

/// Elements seen before, and their characters (datatrove's `find_duplicates`).
pub(crate) fn find_duplicates(items: &[&str]) -> (usize, usize) {
    let mut seen = HashSet::with_capacity(items.len());
    let (mut elements, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(*item) {
            elements += 1;
            chars += len(item);
        }
    }
    (elements, chars)
}

/// An n-gram with its hash computed once (one-shot xxh3 is several times
/// faster than a streaming hasher on short keys); equality still compares
/// the text, so a collision costs a comparison, never a wrong answer.
#[derive(Clone, Copy)]
struct Gram<'a> {
    hash: u64,
    text: &'a str,
}

impl<'a> Gram<'a> {
    fn new(text: &'a str) -> Self {
        Gram { hash: xxh3_64(text.as_bytes()), text }
    }
}

impl PartialEq for Gram<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}

impl Eq for Gram<'_> {}

impl Hash for Gram<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes a precomputed hash through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 hashes are written")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type GramMap<'a, V> = HashMap<Gram<'a>, V, BuildHasherDefault<PassThrough>>;
type GramSet<'a> = HashSet<Gram<'a>, BuildHasherDefault<PassThrough>>;

/// The words joined with `sep` into one string, and each word's byte range
/// in it: every n-gram, joined as datatrove joins it, is then a slice.
struct Joined {
    text: String,
    spans: Vec<(usize, usize)>,
}

impl Joined {
    fn new(words: &[&str], sep: &str) -> Joined {
        let mut text = String::with_capacity(words.iter().map(|w| w.len() + sep.len()).sum());
        let mut spans = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                text.push_str(sep);
            }
            spans.push((text.len(), text.len() + w.len()));
            text.push_str(w);
        }
        Joined { text, spans }
    }

    /// The n-gram of words `i..i + n`, joined.
    fn gram(&self, i: usize, n: usize) -> &str {
        &self.text[self.spans[i].0..self.spans[i + n - 1].1]
    }

    fn grams(&self, n: usize) -> impl Iterator<Item = &str> {
        (0..(self.spans.len() + 1).saturating_sub(n)).map(move |i| self.gram(i, n))
    }
}

/// Characters of the most frequent n-gram times its count; ties go to the
/// n-gram seen first, as `Counter.most_common(1)` does.
///
/// Words hold no spaces, so two space-joined n-grams are equal exactly when
/// their words are: an n-gram's hash is combined from its words' hashes
/// (`word_hashes`, one per word) instead of hashing its text again for
/// every n.
fn find_top_duplicate(spaced: &Joined, word_hashes: &[u64], n: usize) -> Option<usize> {
    let total = (spaced.spans.len() + 1).saturating_sub(n);
    let mut counts: GramMap<(usize, usize)> = GramMap::with_capacity_and_hasher(total, Default::default());
    for (i, gram) in spaced.grams(n).enumerate() {
        let hash = word_hashes[i..i + n]
            .iter()
            .fold(n as u64, |h, &w| (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        counts.entry(Gram { hash: hash ^ (hash >> 29), text: gram }).or_insert((0, i)).0 += 1;
    }
    let (gram, (count, _)) = counts.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))?;
    Some(len(gram.text) * count)
}

/// Characters in n-grams that repeat an earlier one, skipping past each
/// repeat (datatrove's `find_all_duplicate`, whose n-grams are joined
/// without a separator).
fn find_all_duplicate(packed: &Joined, n: usize) -> usize {
    let total = (packed.spans.len() + 1).saturating_sub(n);
    let mut unique: GramSet = GramSet::with_capacity_and_hasher(total, Default::default());
    let (mut repeated, mut i) = (0, 0);
    while i + n <= packed.spans.len() {
        let gram = Gram::new(packed.gram(i, n));
        if unique.insert(gram) {
            i += 1;
        } else {
            repeated += len(gram.text);
            i += n;
        }
    }
    repeated
}

/// Python's `re.split(r"\n{2,}", s)` (`min = 2`) or `re.split("\n+", s)` (`min = 1`).
fn split_newline_runs(s: &str, min: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let run_start = i;
            while i < bytes.len() && bytes[i] == b'\n' {
                i += 1;
            }
            if i - run_start >= min {
                parts.push(&s[start..run_start]);
                start = i;
            }
        } else {
            i += 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

impl GopherRepetition {
    fn judge(&self, doc: &Document<'_>, mut r: Rules) -> Verdict {
        let text = doc.text;
        let c = &self.config;
        if text.is_empty() {
            r.check(f64::NAN, true, "empty");
            return r.verdict();
        }
        let on = |f: Option<f64>| f.filter(|&f| f != 0.0);
        let text_len = len(text) as f64;
        let paragraphs = split_newline_runs(strip(text), 2);
        let (dup_paras, dup_para_chars) = find_duplicates(&paragraphs);
        let frac = dup_paras as f64 / paragraphs.len() as f64;
        if r.check(frac, on(c.dup_para_frac).is_some_and(|f| frac > f), "dup_para_frac") {
            return r.verdict();
        }
        let frac = dup_para_chars as f64 / text_len;
        if r.check(frac, on(c.dup_para_char_frac).is_some_and(|f| frac > f), "dup_para_char_frac") {
            return r.verdict();
        }
        let lines = split_newline_runs(text, 1);
        let (dup_lines, dup_line_chars) = find_duplicates(&lines);
        let frac = dup_lines as f64 / lines.len() as f64;
        if r.check(frac, on(c.dup_line_frac).is_some_and(|f| frac > f), "dup_line_frac") {
            return r.verdict();
        }
        let frac = dup_line_chars as f64 / text_len;
        if r.check(frac, on(c.dup_line_char_frac).is_some_and(|f| frac > f), "dup_line_char_frac") {
            return r.verdict();
        }
        let words = doc.words();
        let spaced = Joined::new(&words, " ");
        let word_hashes: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        for (i, &(n, max)) in c.top_n_grams.iter().enumerate() {
            let frac = find_top_duplicate(&spaced, &word_hashes, n).map_or(0.0, |top| top as f64 / text_len);
            if r.check(frac, frac > max, self.top_reasons[i]) {
                return r.verdict();
            }
        }
        let packed = Joined::new(&words, "");
        for (i, &(n, max)) in c.dup_n_grams.iter().enumerate() {
            let frac = find_all_duplicate(&packed, n) as f64 / text_len;
            if r.check(frac, frac > max, self.dup_reasons[i]) {
                return r.verdict();
            }
        }
        r.verdict()
    }
}

impl Filter for GopherRepetition {
    fn filter(&self, doc: &Document<'_>) -> Verdict {
        self.judge(doc, Rules::filtering())
    }

    /// The measurement of each rule, named as its drop reason.
    fn signal_names(&self) -> &'static [&'static str] {
        self.signals
    }

    fn filter_with_signals(&self, doc: &Document<'_>, signals: &mut Vec<f64>) -> Verdict {
        self.judge(doc, Rules::annotating(signals, self.signals.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Verdict {
        GopherRepetitionConfig::default().build().filter(&Document::text_only(text))
    }

    /// The opening of Moby-Dick (public domain): real prose that passes.
    const PROSE: &str = "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. It is a way I have of driving off the spleen and regulating the circulation. Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul; whenever I find myself involuntarily pausing before coffin warehouses, and bringing up the rear of every funeral I meet; and especially whenever my hypos get such an upper hand of me, that it requires a strong moral principle to prevent me from deliberately stepping into the street, and methodically knocking people's hats off—then, I account it high time to get to sea as soon as I can. This is my substitute for pistol and ball. With a philosophical flourish Cato throws himself upon his sword; I quietly take to the ship. There is nothing surprising in this. If they but knew it, almost all men in their degree, some time or other, cherish very nearly the same feelings towards the ocean with me.";

    #[test]
    fn real_prose_passes() {
        assert_eq!(verdict(PROSE), Verdict::Keep);
    }

    // Expected reasons were checked against datatrove 0.10's GopherRepetitionFilter.
    #[test]
    fn each_rule_fires() {
        assert_eq!(verdict(""), Verdict::drop("empty"));
        assert_eq!(verdict("one para\n\ntwo para\n\none para\n\none para"), Verdict::drop("dup_para_frac"));
        let long = "a long repeated paragraph of some length";
        assert_eq!(
            verdict(&format!("{long}\n\n{long}\n\nx1\n\nx2\n\nx3\n\nx4\n\nx5")),
            Verdict::drop("dup_para_char_frac")
        );
        assert_eq!(verdict("a\nb\na\na\nc"), Verdict::drop("dup_line_frac"));
        assert_eq!(verdict(&format!("{long}\n{long}\nx1\nx2\nx3\nx4\nx5")), Verdict::drop("dup_line_char_frac"));
        assert_eq!(verdict("tiny text"), Verdict::drop("top_2_gram"));
        let repeat = |s: &str, k: usize| format!("{PROSE} {}", s.repeat(k));
        assert_eq!(verdict(&repeat("the same five words here ", 6)), Verdict::Keep);
        assert_eq!(verdict(&repeat("the same five words here ", 10)), Verdict::drop("duplicated_9_n_grams"));
        assert_eq!(verdict(&repeat("the same five words here ", 15)), Verdict::drop("top_4_gram"));
        let sentence = "one two three four five six seven eight nine ten eleven twelve. ";
        assert_eq!(verdict(&repeat(sentence, 3)), Verdict::Keep);
        assert_eq!(verdict(&repeat(sentence, 4)), Verdict::drop("duplicated_10_n_grams"));
        assert_eq!(verdict(&repeat(sentence, 6)), Verdict::drop("duplicated_5_n_grams"));
    }

    #[test]
    fn annotating_measures_every_rule_and_decides_as_filtering_does() {
        let f = GopherRepetitionConfig::default().build();
        assert_eq!(f.signal_names().len(), 4 + 3 + 6);
        assert_eq!(f.signal_names()[4], "top_2_gram");
        let sentence = "one two three four five six seven eight nine ten eleven twelve. ";
        for text in ["", "a\nb\na\na\nc", PROSE, &format!("{PROSE} {}", sentence.repeat(6))] {
            let mut signals = vec![];
            let doc = Document::text_only(text);
            assert_eq!(f.filter_with_signals(&doc, &mut signals), f.filter(&doc), "{text}");
            assert_eq!(signals.len(), 13);
        }
        // Dropped at dup_line_frac (2 of 5 lines repeat), and still measured to the end.
        let mut signals = vec![];
        f.filter_with_signals(&Document::text_only("a\nb\na\na\nc"), &mut signals);
        assert_eq!(signals[2], 0.4);
        assert!(signals[12].is_finite());
    }

    #[test]
    fn joined_ngrams_compare_as_strings() {
        // "".join(["ab", "c"]) == "".join(["a", "bc"]): one repeat of 3 characters.
        assert_eq!(find_all_duplicate(&Joined::new(&["ab", "c", "a", "bc"], ""), 2), 3);
        let words = ["a", "b", "a", "b"];
        let hashes: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        assert_eq!(find_top_duplicate(&Joined::new(&words, " "), &hashes, 2), Some(6));
        assert_eq!(split_newline_runs("a\n\n\nb\nc", 2), ["a", "b\nc"]);
        assert_eq!(split_newline_runs("\na\n\nb", 1), ["", "a", "b"]);
    }
}
