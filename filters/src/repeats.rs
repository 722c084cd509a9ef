//! Counting what repeats inside one document: lines and paragraphs, the most
//! frequent word n-gram, and the characters in repeated n-grams, as
//! datatrove's `find_duplicates`, `find_top_duplicate` and
//! `find_all_duplicate` count them (Gopher repetition, FineWeb).
//!
//! The n-gram counts run nine times over every word of a document, and in
//! most text nearly every n-gram of five words or more occurs once. So an
//! n-gram's text is never hashed: a rolling hash of the words' bytes gives
//! any n-gram's hash in one multiplication, a bitmap sized for the cache
//! finds the n-grams whose hash shares a bit with another's, and only those
//! go through a hash table, where every match is confirmed on the words.
//! A collision costs a comparison, never a wrong count.

use std::cell::RefCell;
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64;

use crate::text::len;

/// A hash table from 64-bit hashes to `u32` values, open addressing with
/// linear probing at most about two-thirds full. A slot packs 32 bits of
/// the hash with the value, so that a table for a whole document stays in
/// the core's cache; callers confirm a match on their own data. Reused
/// between documents (`reset`), so that a document costs no allocation
/// once the table has grown.
#[derive(Default)]
struct Table {
    slots: Vec<u64>,
    shift: u32,
}

const EMPTY: u64 = u64::MAX;

impl Table {
    /// Empties the table and sizes it for `entries` entries.
    fn reset(&mut self, entries: usize) {
        let slots = (entries + entries / 2).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(slots, EMPTY);
        self.shift = 64 - slots.trailing_zeros();
    }

    /// The value stored under `hash` that `same` accepts; otherwise stores
    /// `value` under `hash` and returns `None`. `value` must be below
    /// `u32::MAX`.
    #[inline]
    fn get_or_insert(&mut self, hash: u64, value: u32, same: impl Fn(u32) -> bool) -> Option<u32> {
        let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mask = self.slots.len() - 1;
        let mut slot = (mixed >> self.shift) as usize;
        let tag = mixed & 0xFFFF_FFFF_0000_0000;
        loop {
            let found = self.slots[slot];
            if found == EMPTY {
                self.slots[slot] = tag | u64::from(value);
                return None;
            }
            if found & 0xFFFF_FFFF_0000_0000 == tag && same(found as u32) {
                return Some(found as u32);
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// Elements seen before, and their characters (datatrove's `find_duplicates`).
pub(crate) fn find_duplicates(items: &[&str]) -> (usize, usize) {
    with_scratch(|s| {
        s.table.reset(items.len());
        let (mut elements, mut chars) = (0, 0);
        for (i, item) in items.iter().enumerate() {
            let seen = s.table.get_or_insert(xxh3_64(item.as_bytes()), i as u32, |j| items[j as usize] == *item);
            if seen.is_some() {
                elements += 1;
                chars += len(item);
            }
        }
        (elements, chars)
    })
}

/// A polynomial hash over bytes (each byte plus one, so that zero bytes
/// count), modulo 2^64, in the form that makes any run of words' hash one
/// multiplication: with `q[k]` the sum of byte t's value times base^-(t+1)
/// over the first k words' bytes and `pow[k]` base^(bytes in the first k
/// words), the bytes of words `i..j` hash to `(q[j] - q[i]) * pow[j]`,
/// wherever they stand. Modulo 2^64 some crafted texts collide; that costs
/// time (comparisons), never a wrong answer.
#[derive(Default)]
struct RollingHash {
    q: Vec<u64>,
    pow: Vec<u64>,
}

const BASE: u64 = 0x9E37_79B9_7F4A_7C15 | 1;
/// Words up to this many bytes are hashed with the power table.
const SHORT: usize = 64;

struct Powers {
    base: [u64; SHORT + 1],
    inverse: [u64; SHORT + 1],
}

fn powers() -> &'static Powers {
    static POWERS: OnceLock<Powers> = OnceLock::new();
    POWERS.get_or_init(|| {
        // The inverse of an odd number modulo 2^64, by Newton's iteration.
        let mut inv = BASE;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(BASE.wrapping_mul(inv)));
        }
        let (mut base, mut inverse) = ([1u64; SHORT + 1], [1u64; SHORT + 1]);
        for k in 1..=SHORT {
            base[k] = base[k - 1].wrapping_mul(BASE);
            inverse[k] = inverse[k - 1].wrapping_mul(inv);
        }
        Powers { base, inverse }
    })
}

fn wrapping_pow(mut b: u64, mut e: usize) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

impl RollingHash {
    fn clear(&mut self) {
        self.q.clear();
        self.pow.clear();
        self.q.push(0);
        self.pow.push(1);
    }

    /// Appends a word of `n` bytes whose own hash is `h`; `inv_pow` is
    /// base^-(bytes so far), carried by the caller.
    #[inline]
    fn push(&mut self, h: u64, n: usize, inv_pow: &mut u64) {
        let p = powers();
        let (w_pow, w_inv) =
            if n <= SHORT { (p.base[n], p.inverse[n]) } else { (wrapping_pow(BASE, n), wrapping_pow(p.inverse[1], n)) };
        let pow = self.pow[self.pow.len() - 1].wrapping_mul(w_pow);
        *inv_pow = inv_pow.wrapping_mul(w_inv);
        let q = self.q[self.q.len() - 1].wrapping_add(h.wrapping_mul(*inv_pow));
        self.q.push(q);
        self.pow.push(pow);
    }

    /// The hash of the bytes of words `i..i + n`.
    #[inline]
    fn of(&self, i: usize, n: usize) -> u64 {
        self.q[i + n].wrapping_sub(self.q[i]).wrapping_mul(self.pow[i + n])
    }
}

/// Which hashes of a list share their bit in a bitmap with another: a hash
/// that shares none is unique in the list. Sixteen bits per hash, so that
/// about one in sixteen unique hashes is reported shared.
#[derive(Default)]
struct SharedBits {
    once: Vec<u64>,
    twice: Vec<u64>,
    shift: u32,
}

impl SharedBits {
    fn mark(&mut self, hashes: &[u64]) {
        let bits = (hashes.len() * 16).next_power_of_two().max(64);
        self.once.clear();
        self.once.resize(bits / 64, 0);
        self.twice.clear();
        self.twice.resize(bits / 64, 0);
        self.shift = 64 - bits.trailing_zeros();
        for &h in hashes {
            let (word, bit) = self.at(h);
            self.twice[word] |= self.once[word] & bit;
            self.once[word] |= bit;
        }
    }

    #[inline]
    fn at(&self, hash: u64) -> (usize, u64) {
        let b = (hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> self.shift) as usize;
        (b / 64, 1 << (b % 64))
    }

    #[inline]
    fn shared(&self, hash: u64) -> bool {
        let (word, bit) = self.at(hash);
        self.twice[word] & bit != 0
    }

    /// Marks `hashes`, then sets bit i of `flags` for each shared one;
    /// returns how many are.
    fn flag_shared(&mut self, hashes: &[u64], flags: &mut Vec<u64>) -> usize {
        self.mark(hashes);
        flags.clear();
        flags.resize(hashes.len().div_ceil(64), 0);
        let mut count = 0;
        for (i, &h) in hashes.iter().enumerate() {
            let shared = self.shared(h);
            flags[i / 64] |= u64::from(shared) << (i % 64);
            count += usize::from(shared);
        }
        count
    }
}

/// The first position at or after `from` whose bit is set in `flags`, or
/// `end`.
#[inline]
fn next_flagged(flags: &[u64], from: usize, end: usize) -> usize {
    let mut word = from / 64;
    let Some(&first) = flags.get(word) else { return end };
    let mut bits = first & (u64::MAX << (from % 64));
    while bits == 0 {
        word += 1;
        match flags.get(word) {
            Some(&b) => bits = b,
            None => return end,
        }
    }
    (word * 64 + bits.trailing_zeros() as usize).min(end)
}

/// Buffers reused from one document to the next on each thread.
#[derive(Default)]
struct Scratch {
    table: Table,
    bits: SharedBits,
    hashes: Vec<u64>,
    /// Bit i: the i-th hash shares its bit with another.
    flags: Vec<u64>,
    /// The top n-gram count's (first position, count) per n-gram, or the
    /// walk's (earlier, later) position of each repeat it found.
    counts: Vec<(u32, u32)>,
    buckets: Vec<(u32, u32)>,
}

impl Scratch {
    /// Bytes the buffers hold on to.
    fn retained(&self) -> usize {
        8 * (self.table.slots.capacity()
            + self.bits.once.capacity()
            + self.bits.twice.capacity()
            + self.hashes.capacity()
            + self.flags.capacity()
            + self.counts.capacity()
            + self.buckets.capacity())
    }
}

/// Kept between documents up to this size; a huge document's buffers are
/// freed after it, so that one such document does not hold its memory for
/// the rest of the run.
const RETAINED_LIMIT: usize = 64 << 20;

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::default();
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let result = f(&mut s);
            if s.retained() > RETAINED_LIMIT {
                *s = Scratch::default();
            }
            result
        }
        // Only reentrant use could find it borrowed; it gets its own.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A document's words, hashed for the n-gram counts below.
pub(crate) struct NGrams<'w, 'a> {
    words: &'w [&'a str],
    /// Per position k: characters in words `0..k`.
    char_prefix: Vec<u64>,
    /// Each word's own hash.
    word_hashes: Vec<u64>,
    /// The words joined without a separator, as `find_all_duplicate` joins them.
    packed: RollingHash,
}

/// The base of the hash of a run of words as a sequence of words (equal
/// exactly when the space-joined n-grams are, words holding no spaces).
const WORD_BASE: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Whether two runs of words are the same words; inline, since most words
/// are a few bytes and a call to `memcmp` costs more than comparing them.
fn same_words(a: &[&str], b: &[&str]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| x.len() == y.len() && x.bytes().zip(y.bytes()).all(|(p, q)| p == q))
}

impl<'w, 'a> NGrams<'w, 'a> {
    pub(crate) fn new(words: &'w [&'a str]) -> Self {
        let p = powers();
        let mut char_prefix = Vec::with_capacity(words.len() + 1);
        let mut word_hashes = Vec::with_capacity(words.len());
        let mut packed = RollingHash::default();
        packed.clear();
        let (mut chars, mut inv_pow) = (0, 1);
        char_prefix.push(0);
        for w in words {
            let bytes = w.as_bytes();
            let n = bytes.len();
            chars += if w.is_ascii() { n } else { len(w) } as u64;
            char_prefix.push(chars);
            let h = if n <= SHORT {
                bytes
                    .iter()
                    .zip(p.base[..n].iter().rev())
                    .fold(0u64, |h, (&b, &m)| h.wrapping_add((u64::from(b) + 1).wrapping_mul(m)))
            } else {
                bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1))
            };
            word_hashes.push(h);
            packed.push(h, n, &mut inv_pow);
        }
        NGrams { words, char_prefix, word_hashes, packed }
    }

    /// How many n-grams of `n` words the document has.
    fn grams(&self, n: usize) -> usize {
        (self.words.len() + 1).saturating_sub(n)
    }

    /// Characters of words `i..i + n` joined without a separator.
    fn packed_chars(&self, i: usize, n: usize) -> usize {
        (self.char_prefix[i + n] - self.char_prefix[i]) as usize
    }

    /// Whether words `i..i + n` and `j..j + n`, each joined without a
    /// separator, are the same text (their words may split it differently).
    fn same_packed(&self, i: usize, j: usize, n: usize) -> bool {
        let (a, b) = (&self.words[i..i + n], &self.words[j..j + n]);
        a.iter().map(|w| w.len()).sum::<usize>() == b.iter().map(|w| w.len()).sum::<usize>()
            && a.iter().flat_map(|w| w.bytes()).eq(b.iter().flat_map(|w| w.bytes()))
    }

    /// The hash of words `i..i + n` as a sequence of words.
    fn words_hash(&self, i: usize, n: usize) -> u64 {
        self.word_hashes[i..i + n].iter().fold(0u64, |h, &w| h.wrapping_mul(WORD_BASE).wrapping_add(w))
    }

    /// Characters of the most frequent n-gram (words joined with a space)
    /// times its count; ties go to the n-gram seen first, as
    /// `Counter.most_common(1)` does. `None` when there are fewer than `n`
    /// words.
    ///
    /// n-grams are counted by hash, and only the winner's members are
    /// compared: a collision that merged different n-grams into the winner
    /// is caught there, and the count is redone comparing every match. A
    /// collision elsewhere only lowers a count that did not win.
    pub(crate) fn top_chars(&self, n: usize) -> Option<usize> {
        let total = self.grams(n);
        if n == 0 || total == 0 {
            return None;
        }
        with_scratch(|s| {
            s.hashes.clear();
            s.hashes.extend((0..total).map(|i| self.words_hash(i, n)));
            let shared = s.bits.flag_shared(&s.hashes, &mut s.flags);
            for compare_words in [false, true] {
                s.table.reset(shared);
                // (first position, count) per n-gram that may repeat,
                // numbered in order of first appearance.
                s.counts.clear();
                let mut i = next_flagged(&s.flags, 0, total);
                while i < total {
                    let h = s.hashes[i];
                    let (counts, hashes, words) = (&s.counts, &s.hashes, self.words);
                    let same = |c: u32| {
                        let j = counts[c as usize].0 as usize;
                        hashes[j] == h && (!compare_words || same_words(&words[j..j + n], &words[i..i + n]))
                    };
                    match s.table.get_or_insert(h, s.counts.len() as u32, same) {
                        Some(c) => s.counts[c as usize].1 += 1,
                        None => s.counts.push((i as u32, 1)),
                    }
                    i = next_flagged(&s.flags, i + 1, total);
                }
                // The first n-gram with the top count; every n-gram occurs
                // once when none repeats, and the first of all is the top.
                let (first, count) =
                    s.counts.iter().rev().max_by_key(|c| c.1).filter(|c| c.1 > 1).copied().unwrap_or((0, 1));
                let first = first as usize;
                let winner = &self.words[first..first + n];
                let pure = count == 1
                    || s.hashes
                        .iter()
                        .enumerate()
                        .all(|(i, &h)| h != s.hashes[first] || same_words(&self.words[i..i + n], winner));
                if compare_words || pure {
                    return Some((self.packed_chars(first, n) + (n - 1)) * count as usize);
                }
            }
            unreachable!("the second count compares words")
        })
    }

    /// At least [`NGrams::top_chars`], for much less work: n-grams are
    /// counted in buckets by hash, several n-grams to a bucket, and the
    /// bound is the largest bucket's count times its longest n-gram.
    /// Filtering needs the exact value only when this is above its limit.
    pub(crate) fn top_chars_bound(&self, n: usize) -> usize {
        let total = self.grams(n);
        if n == 0 || total == 0 {
            return 0;
        }
        if u32::try_from(total).is_err() {
            return usize::MAX;
        }
        with_scratch(|s| {
            let slots = (total / 4).next_power_of_two().max(16);
            let shift = 64 - slots.trailing_zeros();
            s.buckets.clear();
            s.buckets.resize(slots, (0, 0));
            for i in 0..total {
                let b = (self.words_hash(i, n).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize;
                let Ok(chars) = u32::try_from(self.packed_chars(i, n) + (n - 1)) else {
                    return usize::MAX;
                };
                let (count, longest) = &mut s.buckets[b];
                *count += 1;
                *longest = (*longest).max(chars);
            }
            s.buckets.iter().map(|&(count, longest)| count as usize * longest as usize).max().unwrap_or(0)
        })
    }

    /// Characters in n-grams (words joined without a separator) that repeat
    /// an earlier one, skipping past each repeat, as datatrove's
    /// `find_all_duplicate`: only the n-grams it visits are remembered.
    ///
    /// The walk trusts equal hashes and notes each repeat it found; the
    /// repeats are then compared, and the walk is redone comparing text
    /// when one was a collision.
    pub(crate) fn duplicated_chars(&self, n: usize) -> usize {
        let total = self.grams(n);
        if n == 0 || total == 0 {
            return 0;
        }
        with_scratch(|s| {
            s.hashes.clear();
            s.hashes.extend((0..total).map(|i| self.packed.of(i, n)));
            let shared = s.bits.flag_shared(&s.hashes, &mut s.flags);
            for compare_text in [false, true] {
                s.table.reset(shared);
                s.counts.clear();
                // A hash that shares no bit is unique: never seen before,
                // and never seen again, so it need not be remembered, and
                // the walk steps over it.
                let (mut repeated, mut i) = (0, next_flagged(&s.flags, 0, total));
                while i < total {
                    let h = s.hashes[i];
                    let seen = s
                        .table
                        .get_or_insert(h, i as u32, |j| {
                            s.hashes[j as usize] == h && (!compare_text || self.same_packed(j as usize, i, n))
                        })
                        .map(|j| s.counts.push((j, i as u32)))
                        .is_some();
                    if seen {
                        repeated += self.packed_chars(i, n);
                        i += n;
                    } else {
                        i += 1;
                    }
                    i = next_flagged(&s.flags, i, total);
                }
                if compare_text || s.counts.iter().all(|&(j, i)| self.same_packed(j as usize, i as usize, n)) {
                    return repeated;
                }
            }
            unreachable!("the second walk compares text")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// datatrove's definitions, written as plainly as its Python.
    fn top_by_definition(words: &[&str], n: usize) -> Option<usize> {
        let grams: Vec<String> = (0..(words.len() + 1).saturating_sub(n)).map(|i| words[i..i + n].join(" ")).collect();
        let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, g) in grams.iter().enumerate() {
            counts.entry(g).or_insert((0, i)).0 += 1;
        }
        let (gram, (count, _)) = counts.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))?;
        Some(len(gram) * count)
    }

    fn all_duplicate_by_definition(words: &[&str], n: usize) -> usize {
        let mut unique = HashSet::new();
        let (mut repeated, mut i) = (0, 0);
        while i + n <= words.len() {
            let gram = words[i..i + n].concat();
            if unique.contains(&gram) {
                repeated += len(&gram);
                i += n;
            } else {
                unique.insert(gram);
                i += 1;
            }
        }
        repeated
    }

    #[test]
    fn counts_agree_with_the_definitions() {
        let texts = [
            "",
            "a",
            "a b a b",
            "ab c a bc ab c a bc",
            "the cat sat on the mat and the cat sat on the hat , the cat sat on the mat",
            "é ü é ü ééé ü é ü",
            "x y z x y z x y z x y z x y z x y z x y z x y z x y z w",
        ];
        let moby = "Call me Ishmael . Some years ago — never mind how long precisely — having little or no money in \
            my purse , and nothing particular to interest me on shore , I thought I would sail about a little and \
            see the watery part of the world . It is a way I have of driving off the spleen";
        let repeated = format!("{moby} {moby} {moby}");
        for text in texts.iter().copied().chain([moby, repeated.as_str()]) {
            let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
            let grams = NGrams::new(&words);
            for n in [1, 2, 3, 4, 2, 7] {
                assert_eq!(grams.top_chars(n), top_by_definition(&words, n), "top {n} of {text:?}");
                assert!(grams.top_chars_bound(n) >= grams.top_chars(n).unwrap_or(0), "top {n} of {text:?}");
            }
            for n in 1..=10 {
                assert_eq!(grams.duplicated_chars(n), all_duplicate_by_definition(&words, n), "{n}: {text:?}");
            }
        }
    }

    #[test]
    fn a_huge_document_does_not_keep_its_buffers() {
        let words: Vec<String> = (0..3_000_000).map(|i| format!("w{}", i % 1000)).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        NGrams::new(&words).duplicated_chars(5);
        assert_eq!(with_scratch(|s| s.retained()), 0, "freed after the huge document");
        NGrams::new(&words[..1000]).duplicated_chars(5);
        assert!(with_scratch(|s| s.retained()) > 0, "small documents keep theirs");
    }

    #[test]
    fn flagged_positions_are_found_in_order() {
        let flags = [1u64 << 3 | 1 << 63, 0, 1 << 5];
        let walk = |end: usize| {
            let (mut found, mut i) = (vec![], next_flagged(&flags, 0, end));
            while i < end {
                found.push(i);
                i = next_flagged(&flags, i + 1, end);
            }
            found
        };
        assert_eq!(walk(192), [3, 63, 133]);
        assert_eq!(walk(100), [3, 63]);
        assert_eq!(next_flagged(&flags, 134, 192), 192);
        assert_eq!(next_flagged(&flags, 500, 192), 192);
    }

    #[test]
    fn packed_ngrams_compare_as_text() {
        // "".join(["ab", "c"]) == "".join(["a", "bc"]): one repeat of 3 characters.
        let words = ["ab", "c", "a", "bc"];
        assert_eq!(NGrams::new(&words).duplicated_chars(2), 3);
        assert_eq!(find_duplicates(&["a", "b", "a", "a", "cc", "cc"]), (3, 4));
    }

    #[test]
    fn the_rolling_hash_is_the_hash_of_the_joined_text() {
        let words = ["one", "twö", "", "three", "one", "twö", &"long".repeat(40)];
        let grams = NGrams::new(&words);
        assert_eq!(grams.packed.of(0, 2), grams.packed.of(4, 2));
        assert_eq!(grams.packed.of(1, 2), grams.packed.of(1, 1));
        assert_ne!(grams.words_hash(1, 2), grams.words_hash(1, 1));
        assert_ne!(grams.packed.of(0, 2), grams.packed.of(1, 2));
        let long = "long".repeat(40);
        let alone = [long.as_str(), "x"];
        let alone = NGrams::new(&alone);
        assert_eq!(alone.packed.of(0, 1), grams.packed.of(6, 1));
        assert_ne!(alone.packed.of(0, 2), grams.packed.of(6, 1));
    }

    /// Thue–Morse words and their complements hash alike modulo 2^64 (any
    /// odd base): the counts must not take the hash's word for it.
    #[test]
    fn colliding_hashes_are_told_apart() {
        let thue_morse = |flip: bool| -> String {
            (0..2048u32).map(|i| if (i.count_ones() % 2 == 1) != flip { 'a' } else { 'b' }).collect()
        };
        let (t, u) = (thue_morse(false), thue_morse(true));
        let words = [t.as_str(), u.as_str(), "x", u.as_str(), t.as_str(), "y", t.as_str(), "z"];
        let grams = NGrams::new(&words);
        assert_eq!(grams.packed.of(0, 1), grams.packed.of(1, 1), "the test needs a collision");
        for n in 1..=4 {
            assert_eq!(grams.top_chars(n), top_by_definition(&words, n), "top {n}");
            assert_eq!(grams.duplicated_chars(n), all_duplicate_by_definition(&words, n), "dup {n}");
        }
    }
}
