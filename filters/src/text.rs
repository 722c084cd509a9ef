//! Text helpers that behave as Python's `str` methods do, because the
//! filters reproduce datatrove's decisions, which are written with them.

use std::sync::OnceLock;

/// A set of characters: a bitmap for ASCII, where almost every lookup
/// lands, and a sorted list for the rest. The filters ask it once per
/// character or word, where a hash set's hashing dominated.
pub struct CharSet {
    ascii: u128,
    other: Vec<char>,
}

impl CharSet {
    pub fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii & (1 << c as u32) != 0
        } else {
            self.other.binary_search(&c).is_ok()
        }
    }
}

impl FromIterator<char> for CharSet {
    fn from_iter<I: IntoIterator<Item = char>>(chars: I) -> CharSet {
        let mut set = CharSet { ascii: 0, other: Vec::new() };
        for c in chars {
            if c.is_ascii() {
                set.ascii |= 1 << c as u32;
            } else {
                set.other.push(c);
            }
        }
        set.other.sort_unstable();
        set.other.dedup();
        set
    }
}

/// A set of characters from a data file of hex code points.
fn char_set(hex: &'static str) -> CharSet {
    hex.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| u32::from_str_radix(l.trim(), 16).ok().and_then(char::from_u32))
        .collect()
}

/// A bitmap over the Basic Multilingual Plane of a character property,
/// built once from its definition: a Gopher filter asks for every word of
/// every page, and pages in other scripts ask outside ASCII.
pub(crate) struct BmpBits(Vec<u64>);

impl BmpBits {
    pub(crate) fn new(property: impl Fn(char) -> bool) -> BmpBits {
        let mut bits = vec![0u64; 0x10000 / 64];
        for c in (0..0x10000u32).filter_map(char::from_u32).filter(|&c| property(c)) {
            bits[c as usize / 64] |= 1 << (c as usize % 64);
        }
        BmpBits(bits)
    }

    /// The property of `c`, or `None` outside the plane.
    #[inline]
    pub(crate) fn get(&self, c: char) -> Option<bool> {
        let code = c as usize;
        self.0.get(code / 64).map(|word| word >> (code % 64) & 1 == 1)
    }
}

/// datatrove's `PUNCTUATION_SET` (ASCII and CJK punctuation, control
/// characters, and the Unicode terminal punctuation).
pub fn is_punctuation(c: char) -> bool {
    static SET: OnceLock<CharSet> = OnceLock::new();
    static BMP: OnceLock<BmpBits> = OnceLock::new();
    let set = || SET.get_or_init(|| char_set(include_str!("../data/datatrove_punctuation.txt")));
    BMP.get_or_init(|| BmpBits::new(|c| set().contains(c))).get(c).unwrap_or_else(|| set().contains(c))
}

/// datatrove's `TERMINAL_PUNCTUATION`: marks that end a sentence in some script.
pub fn is_terminal_punctuation(c: char) -> bool {
    static SET: OnceLock<CharSet> = OnceLock::new();
    SET.get_or_init(|| char_set(include_str!("../data/datatrove_terminal_punctuation.txt"))).contains(c)
}

/// The punctuation at which spaCy's Sentencizer ends a sentence.
pub fn is_sentence_end(c: char) -> bool {
    static SET: OnceLock<CharSet> = OnceLock::new();
    SET.get_or_init(|| char_set(include_str!("../data/spacy_sentencizer_punct.txt"))).contains(c)
}

/// spaCy's `is_punct`: every character is Unicode punctuation (P*).
pub fn is_all_punct(s: &str) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory::*};
    s.chars().all(|c| {
        matches!(
            get_general_category(c),
            ConnectorPunctuation
                | DashPunctuation
                | OpenPunctuation
                | ClosePunctuation
                | InitialPunctuation
                | FinalPunctuation
                | OtherPunctuation
        )
    })
}

/// Python's `str.isspace` for one character.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// Python's `str.isalpha` for one character: general category L*.
pub fn is_alpha(c: char) -> bool {
    static BMP: OnceLock<BmpBits> = OnceLock::new();
    BMP.get_or_init(|| BmpBits::new(is_letter_category)).get(c).unwrap_or_else(|| is_letter_category(c))
}

fn is_letter_category(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory::*};
    matches!(
        get_general_category(c),
        UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter
    )
}

/// Python regex `\d` on str: Unicode decimal digits (category Nd).
pub fn is_decimal(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory::DecimalNumber};
    get_general_category(c) == DecimalNumber
}

/// Python's `str.splitlines()`: lines without their endings.
///
/// Scans bytes, not characters: the breaks are ASCII control bytes, U+0085
/// (`C2 85`) and U+2028/2029 (`E2 80 A8`/`A9`), and in UTF-8 no byte of
/// another character can look like one of them or start one.
pub fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::with_capacity(text.len() / 64 + 1);
    lines.extend(Lines { text, at: 0 });
    lines
}

/// The lines of [`split_lines`], one at a time.
pub fn lines(text: &str) -> Lines<'_> {
    Lines { text, at: 0 }
}

pub struct Lines<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        if start >= bytes.len() {
            return None;
        }
        let mut i = start;
        while i < bytes.len() {
            i += clear_bytes(&bytes[i..]);
            if i >= bytes.len() {
                break;
            }
            let width = match bytes[i] {
                // Nothing at or between these starts a break: one test for most bytes.
                0x1f..=0xc1 => {
                    i += 1;
                    continue;
                }
                b'\n' | 0x0b | 0x0c | 0x1c..=0x1e => 1,
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
                b'\r' => 1,
                0xc2 if bytes.get(i + 1) == Some(&0x85) => 2,
                0xe2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) => 3,
                _ => {
                    i += 1;
                    continue;
                }
            };
            self.at = i + width;
            return Some(&self.text[start..i]);
        }
        self.at = bytes.len();
        Some(&self.text[start..])
    }
}

/// A one in every byte of a word, and every byte's high bit: the masks of
/// the eight-bytes-at-once scans (here and in the word splitter).
pub(crate) const ONES: u64 = u64::from_ne_bytes([1; 8]);
pub(crate) const HIGH: u64 = 0x80 * ONES;

/// How many bytes at the start of `bytes` can start no line break, counted
/// eight at a time: a break starts with a control byte below 0x1f, or with
/// 0xc2 or 0xe2. (Borrows in the test can mark bytes after the first that
/// matches, never before.)
#[inline]
fn clear_bytes(bytes: &[u8]) -> usize {
    let zero_byte = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let marked =
            (x.wrapping_sub(0x1f * ONES) & !x & HIGH) | zero_byte(x ^ (0xc2 * ONES)) | zero_byte(x ^ (0xe2 * ONES));
        if marked != 0 {
            return at + marked.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    at
}

/// Python's `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.count(sub)`: non-overlapping occurrences.
pub fn count(text: &str, sub: &str) -> usize {
    text.matches(sub).count()
}

/// Python's `len(str)`: code points.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The character-by-character definition, to check the byte scan against.
    fn split_lines_by_chars(text: &str) -> Vec<&str> {
        let mut lines = Vec::new();
        let mut start = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let breaks = "\n\r\u{0b}\u{0c}\u{1c}\u{1d}\u{1e}\u{85}\u{2028}\u{2029}";
            if breaks.contains(c) {
                lines.push(&text[start..i]);
                start = i + c.len_utf8();
                if c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
                    start += chars.next().map_or(0, |(_, n)| n.len_utf8());
                }
            }
        }
        if start < text.len() {
            lines.push(&text[start..]);
        }
        lines
    }

    #[test]
    fn the_byte_scan_splits_lines_as_python() {
        let pieces = [
            "a", "é", "\n", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\u{2027}", "\u{0b}", "\u{1c}", " ", "€",
            "\u{a0}", "\u{1f}", "’", "abcdefgh", "abc", "\u{c2}", "\u{1e}",
        ];
        let mut state = 3u64;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(state % 40) {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                text.push_str(pieces[(state >> 33) as usize % pieces.len()]);
            }
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            assert_eq!(split_lines(&text), split_lines_by_chars(&text), "{text:?}");
        }
    }

    #[test]
    fn behaves_like_python() {
        assert_eq!(split_lines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(count("a...b....", "..."), 2);
        assert_eq!(strip("\u{1c} x \n"), "x");
        assert!(is_punctuation('.') && is_punctuation('…') && is_punctuation('\u{1}') && !is_punctuation('a'));
        assert!(is_alpha('é') && is_alpha('中') && !is_alpha('1') && !is_alpha('\u{301}') && !is_alpha('Ⅷ'));
        assert!(is_alpha('क') && !is_alpha('\u{93f}'));
        assert!(is_alpha('\u{20000}') && !is_alpha('\u{1F600}') && is_punctuation('\u{1F600}') == set_has('\u{1F600}'));
    }

    fn set_has(c: char) -> bool {
        char_set(include_str!("../data/datatrove_punctuation.txt")).contains(c)
    }

    #[test]
    fn the_plane_bitmaps_agree_with_their_definitions() {
        let set = char_set(include_str!("../data/datatrove_punctuation.txt"));
        for c in (0..0x10000u32).filter_map(char::from_u32) {
            assert_eq!(is_alpha(c), is_letter_category(c), "{c:?}");
            assert_eq!(is_punctuation(c), set.contains(c), "{c:?}");
        }
    }
}
