//! English word splitting that follows spaCy's tokenizer, which datatrove
//! uses for its quality filters: whitespace first, then for each chunk the
//! tokenizer exceptions (`don't` → `do n't`), prefixes (opening quotes and
//! brackets, currency), suffixes (closing punctuation, `'s`, a period after a
//! lowercase letter or a digit), URLs kept whole, and infixes (hyphens and
//! slashes between letters, ellipses). The exceptions are spaCy's own table
//! (`data/spacy_en_exceptions.tsv`); the affix rules are its English
//! defaults with Unicode letter classes standing in for its long character
//! lists. Tokens are returned as slices of the text, as datatrove returns
//! them (stripped, empty ones dropped).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::ControlFlow;
use std::sync::OnceLock;

use crate::text::{is_space, BmpBits, HIGH, ONES};

static EXCEPTIONS_TSV: &str = include_str!("../data/spacy_en_exceptions.tsv");

/// FNV-1a: the exception table is probed once or more for every word, with
/// short keys, where SipHash's setup dominates.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Exceptions = HashMap<&'static str, Vec<&'static str>, BuildHasherDefault<Fnv>>;

fn exceptions() -> &'static Exceptions {
    static TABLE: OnceLock<Exceptions> = OnceLock::new();
    TABLE.get_or_init(|| {
        EXCEPTIONS_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let mut parts = l.split('\t');
                let form = parts.next()?;
                Some((form, parts.collect()))
            })
            .collect()
    })
}

/// A set of characters with a bitmask for its ASCII ones: most characters
/// tested are ASCII, and a scan of the string for each costs more than the
/// rest of the word split.
struct CharSet {
    ascii: u128,
    all: &'static str,
}

impl CharSet {
    const fn new(all: &'static str) -> CharSet {
        let bytes = all.as_bytes();
        let (mut ascii, mut i) = (0u128, 0);
        while i < bytes.len() {
            if bytes[i] < 0x80 {
                ascii |= 1 << bytes[i];
            }
            i += 1;
        }
        CharSet { ascii, all }
    }

    #[inline]
    fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii >> (c as u32) & 1 == 1
        } else {
            self.all.contains(c)
        }
    }
}

/// Single characters that spaCy splits off the front of a chunk.
const PREFIX_CHARS: CharSet = CharSet::new(
    "§%=—–…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232A}⟦⟧$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿",
);
/// Single characters that spaCy splits off the end of a chunk, wherever they follow.
const SUFFIX_CHARS: CharSet = CharSet::new(
    "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232A}⟦⟧—–",
);
/// spaCy's LIST_PUNCT: a period after one of these is split off.
const PUNCT: CharSet = CharSet::new("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪");
/// spaCy's LIST_CURRENCY: the single characters, and the three signs of
/// more than one, which are prefixes anywhere and suffixes after a digit.
const CURRENCY: CharSet = CharSet::new("$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿");
const CURRENCY_WORDS: &[&str] = &["US$", "C$", "A$"];
/// spaCy's LIST_QUOTES; the angle brackets are there twice, as U+3008/9
/// and as U+2329/A.
const QUOTES: CharSet = CharSet::new("'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232A}⟦⟧");
const UNITS: &[&str] = &[
    "km",
    "km²",
    "km³",
    "m",
    "m²",
    "m³",
    "dm",
    "dm²",
    "dm³",
    "cm",
    "cm²",
    "cm³",
    "mm",
    "mm²",
    "mm³",
    "ha",
    "µm",
    "nm",
    "yd",
    "in",
    "ft",
    "kg",
    "g",
    "mg",
    "µg",
    "t",
    "lb",
    "oz",
    "m/s",
    "km/h",
    "kmh",
    "mph",
    "hPa",
    "Pa",
    "mbar",
    "mb",
    "MB",
    "kb",
    "KB",
    "gb",
    "GB",
    "tb",
    "TB",
    "T",
    "G",
    "M",
    "K",
    "%",
    "км",
    "км²",
    "км³",
    "м",
    "м²",
    "м³",
    "дм",
    "дм²",
    "дм³",
    "см",
    "см²",
    "см³",
    "мм",
    "мм²",
    "мм³",
    "нм",
    "кг",
    "г",
    "мг",
    "м/с",
    "км/ч",
    "кПа",
    "Па",
    "мбар",
    "Кб",
    "КБ",
    "кб",
    "Мб",
    "МБ",
    "мб",
    "Гб",
    "ГБ",
    "гб",
    "Тб",
    "ТБ",
    // spaCy's list lacks a comma between "тб" and "كم": it has this, and
    // neither alone here ("كم" comes again further on).
    "тбكم",
    "كم²",
    "كم³",
    "م",
    "م²",
    "م³",
    "سم",
    "سم²",
    "سم³",
    "مم",
    "مم²",
    "مم³",
    "كم",
    "غرام",
    "جرام",
    "جم",
    "كغ",
    "ملغ",
    "كوب",
    "اكواب",
];

/// Symbols (emoji, arrows, box drawing, ...) that spaCy treats as affixes and infixes.
#[inline]
fn is_symbol(c: char) -> bool {
    if (c as u32) < 0xA6 {
        return false;
    }
    // Asked of most characters near a chunk's ends; the table is searched once.
    static BMP: OnceLock<BmpBits> = OnceLock::new();
    BMP.get_or_init(|| BmpBits::new(in_symbols)).get(c).unwrap_or_else(|| in_symbols(c))
}

fn in_symbols(c: char) -> bool {
    let c = c as u32;
    SYMBOLS
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// spaCy 3.8's `_other_symbols` (lang/char_classes.py), adjacent ranges
/// joined. It is not Unicode's So category: the arrows U+2190..U+2194, the
/// minus sign and the emoji skin-tone modifiers are left out, while U+FFFD
/// is in, so a word split on any of them must follow this list and no
/// general property. scripts/parity/symbols_table.py checks it against
/// spaCy's class code point by code point.
#[rustfmt::skip]
const SYMBOLS: &[(u32, u32)] = &[
    (0xA6, 0xA6), (0xA9, 0xA9), (0xAE, 0xAE), (0xB0, 0xB0), (0x482, 0x482), (0x58D, 0x58E), (0x60E, 0x60F),
    (0x6DE, 0x6DE), (0x6E9, 0x6E9), (0x6FD, 0x6FE), (0x7F6, 0x7F6), (0x9FA, 0x9FA), (0xB70, 0xB70),
    (0xBF3, 0xBF8), (0xBFA, 0xBFA), (0xC7F, 0xC7F), (0xD4F, 0xD4F), (0xD79, 0xD79), (0xF01, 0xF03),
    (0xF13, 0xF13), (0xF15, 0xF17), (0xF1A, 0xF1F), (0xF34, 0xF34), (0xF36, 0xF36), (0xF38, 0xF38),
    (0xFBE, 0xFC5), (0xFC7, 0xFCC), (0xFCE, 0xFCF), (0xFD5, 0xFD8), (0x109E, 0x109F), (0x1390, 0x1399),
    (0x1940, 0x1940), (0x19DE, 0x19FF), (0x1B61, 0x1B6A), (0x1B74, 0x1B7C), (0x2100, 0x2101),
    (0x2103, 0x2106), (0x2108, 0x2109), (0x2114, 0x2114), (0x2116, 0x2117), (0x211E, 0x2123),
    (0x2125, 0x2125), (0x2127, 0x2127), (0x2129, 0x2129), (0x212E, 0x212E), (0x213A, 0x213B),
    (0x214A, 0x214A), (0x214C, 0x214D), (0x214F, 0x214F), (0x218A, 0x218B), (0x2195, 0x2199),
    (0x219C, 0x219F), (0x21A1, 0x21A2), (0x21A4, 0x21A5), (0x21A7, 0x21AD), (0x21AF, 0x21CD),
    (0x21D0, 0x21D1), (0x21D3, 0x21D3), (0x21D5, 0x21F3), (0x2300, 0x2307), (0x230C, 0x231F),
    (0x2322, 0x2328), (0x232B, 0x237B), (0x237D, 0x239A), (0x23B4, 0x23DB), (0x23E2, 0x2426),
    (0x2440, 0x244A), (0x249C, 0x24E9), (0x2500, 0x25B6), (0x25B8, 0x25C0), (0x25C2, 0x25F7),
    (0x2600, 0x266E), (0x2670, 0x2767), (0x2794, 0x27BF), (0x2800, 0x28FF), (0x2B00, 0x2B2F),
    (0x2B45, 0x2B46), (0x2B4D, 0x2B73), (0x2B76, 0x2B95), (0x2B98, 0x2BC8), (0x2BCA, 0x2BFE),
    (0x2CE5, 0x2CEA), (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5), (0x2FF0, 0x2FFB),
    (0x3004, 0x3004), (0x3012, 0x3013), (0x3020, 0x3020), (0x3036, 0x3037), (0x303E, 0x303F),
    (0x3190, 0x3191), (0x3196, 0x319F), (0x31C0, 0x31E3), (0x3200, 0x321E), (0x322A, 0x3247),
    (0x3250, 0x3250), (0x3260, 0x327F), (0x328A, 0x32B0), (0x32C0, 0x32FE), (0x3300, 0x33FF),
    (0x4DC0, 0x4DFF), (0xA490, 0xA4C6), (0xA828, 0xA82B), (0xA836, 0xA837), (0xA839, 0xA839),
    (0xAA77, 0xAA79), (0xFDFD, 0xFDFD), (0xFFE4, 0xFFE4), (0xFFE8, 0xFFE8), (0xFFED, 0xFFEE),
    (0xFFFC, 0xFFFD), (0x10137, 0x1013F), (0x10179, 0x10189), (0x1018C, 0x1018E), (0x10190, 0x1019B),
    (0x101A0, 0x101A0), (0x101D0, 0x101FC), (0x10877, 0x10878), (0x10AC8, 0x10AC8), (0x1173F, 0x1173F),
    (0x16B3C, 0x16B3F), (0x16B45, 0x16B45), (0x1BC9C, 0x1BC9C), (0x1D000, 0x1D0F5), (0x1D100, 0x1D126),
    (0x1D129, 0x1D164), (0x1D16A, 0x1D16C), (0x1D183, 0x1D184), (0x1D18C, 0x1D1A9), (0x1D1AE, 0x1D1E8),
    (0x1D200, 0x1D241), (0x1D245, 0x1D245), (0x1D300, 0x1D356), (0x1D800, 0x1D9FF), (0x1DA37, 0x1DA3A),
    (0x1DA6D, 0x1DA74), (0x1DA76, 0x1DA83), (0x1DA85, 0x1DA86), (0x1ECAC, 0x1ECAC), (0x1F000, 0x1F02B),
    (0x1F030, 0x1F093), (0x1F0A0, 0x1F0AE), (0x1F0B1, 0x1F0BF), (0x1F0C1, 0x1F0CF), (0x1F0D1, 0x1F0F5),
    (0x1F110, 0x1F16B), (0x1F170, 0x1F1AC), (0x1F1E6, 0x1F202), (0x1F210, 0x1F23B), (0x1F240, 0x1F248),
    (0x1F250, 0x1F251), (0x1F260, 0x1F265), (0x1F300, 0x1F3FA), (0x1F400, 0x1F6D4), (0x1F6E0, 0x1F6EC),
    (0x1F6F0, 0x1F6F9), (0x1F700, 0x1F773), (0x1F780, 0x1F7D8), (0x1F800, 0x1F80B), (0x1F810, 0x1F847),
    (0x1F850, 0x1F859), (0x1F860, 0x1F887), (0x1F890, 0x1F8AD), (0x1F900, 0x1F90B), (0x1F910, 0x1F93E),
    (0x1F940, 0x1F970), (0x1F973, 0x1F976), (0x1F97A, 0x1F97A), (0x1F97C, 0x1F9A2), (0x1F9B0, 0x1F9B9),
    (0x1F9C0, 0x1F9C2), (0x1F9D0, 0x1F9FF), (0x1FA60, 0x1FA6D),
];

/// Scripts without case, which spaCy's letter classes count as both lower
/// and upper case (its `_uncased` ranges); other caseless scripts (Gujarati,
/// Malayalam, Thaana, ...) are in no class, so a period after them stays.
fn uncased(c: char) -> bool {
    matches!(c as u32,
        0x1200..=0x137F | 0x0980..=0x09FF | 0x0591..=0x05F4 | 0xFB1D..=0xFB4F | 0x0620..=0x064A | 0x066E..=0x06D5
        | 0x06E5..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08BD | 0xFB50..=0xFBB1 | 0xFBD3..=0xFD3D | 0xFD50..=0xFDC7
        | 0xFDF0..=0xFDFB | 0xFE70..=0xFEFC | 0x1EE00..=0x1EEBB | 0x0D80..=0x0DFF | 0x0900..=0x097F | 0x0C80..=0x0CFF
        | 0x0B80..=0x0BFF | 0x0C00..=0x0C7F | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3040..=0x30FF | 0x4E00..=0x9FFF
        | 0x3400..=0x4DBF | 0x20000..=0x2EBEF | 0x2E80..=0x2FFF | 0x3000..=0x303F | 0x31C0..=0x31EF | 0x3200..=0x33FF
        | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0x1F200..=0x1F2FF | 0x2F800..=0x2FA1F)
}

/// Latin letters as spaCy lists them (with IPA and phonetic extensions).
fn latin(c: char) -> bool {
    matches!(c as u32,
        0x41..=0x5A | 0x61..=0x7A | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x24F
        | 0x2C60..=0x2C7F | 0xA722..=0xA7FA | 0xAB30..=0xAB64 | 0x250..=0x2AF | 0x1D00..=0x1D25 | 0x1D6B..=0x1D9A
        | 0x1E00..=0x1EFF)
}

/// The Cyrillic and Greek letters spaCy lists.
fn cyrillic_greek(c: char) -> bool {
    !c.is_ascii()
        && (matches!(c, 'а'..='я' | 'А'..='Я' | 'α'..='ω' | 'Α'..='Ω')
            || "ёЁәөүҗңһӘӨҮҖҢҺάέίόώήύΆΈΊΌΏΉΎіїєґІЇЄҐѓѕјљњќѐѝЃЅЈЉЊЌЀЍ".contains(c))
}

/// spaCy's ALPHA class.
fn is_alpha_class(c: char) -> bool {
    latin(c) || cyrillic_greek(c) || uncased(c)
}

fn is_lower_class(c: char) -> bool {
    // IPA and phonetic letters are all in spaCy's lowercase list, caseless or not.
    let phonetic =
        matches!(c as u32, 0x250..=0x2AF | 0x1D00..=0x1D25 | 0x1D6B..=0x1D77 | 0x1D79..=0x1D9A | 0xAB30..=0xAB64);
    phonetic || ((latin(c) || cyrillic_greek(c)) && c.is_lowercase()) || uncased(c)
}

fn is_upper_class(c: char) -> bool {
    ((latin(c) || cyrillic_greek(c)) && c.is_uppercase()) || uncased(c)
}

/// Length in bytes of the prefix at the start of `s`, 0 if none.
fn prefix_len(s: &str) -> usize {
    let mut chars = s.chars();
    let Some(c) = chars.next() else { return 0 };
    if s.starts_with("..") {
        return s.len() - s.trim_start_matches('.').len();
    }
    if let Some(rest) = CURRENCY_WORDS.iter().find(|p| s.starts_with(**p)) {
        return rest.len();
    }
    if c == '+' {
        return if chars.next().is_some_and(|d| d.is_ascii_digit()) { 0 } else { 1 };
    }
    if PREFIX_CHARS.contains(c) || is_symbol(c) {
        return c.len_utf8();
    }
    0
}

/// Bytes at the end of a chunk where a suffix other than a run of periods
/// can start: the longest unit is 12 bytes, `’s` 4, the others one
/// character; the two characters before the window are read for context.
const SUFFIX_WINDOW: usize = 16;

/// Length in bytes of the suffix at the end of `s`, 0 if none. Like
/// spaCy's `suffix_search`, the leftmost match that reaches the end wins.
///
/// Only the end of `s` is read, so that stripping a long run of symbols one
/// suffix at a time stays linear: a match starts within the last
/// [`SUFFIX_WINDOW`] bytes, or is a run of two or more periods (whose
/// start, when further left, is the leftmost match).
fn suffix_len(s: &str) -> usize {
    let dots = s.len() - s.trim_end_matches('.').len();
    let mut window = s.len().saturating_sub(SUFFIX_WINDOW);
    while !s.is_char_boundary(window) {
        window -= 1;
    }
    if dots >= 2 && s.len() - dots < window {
        return dots;
    }
    // The scan starts two characters before the window, for `prev` and `prev2`.
    let start = s[..window].char_indices().rev().nth(1).map_or(0, |(at, _)| at);
    let (mut prev, mut prev2): (Option<char>, Option<char>) = (None, None);
    let mut chars = s[start..].char_indices().map(|(at, c)| (start + at, c)).peekable();
    while let Some((at, c)) = chars.next() {
        if at < window {
            prev2 = prev;
            prev = Some(c);
            continue;
        }
        let rest = &s[at..];
        if suffix_starts_at(rest, c, chars.peek().is_none(), prev, prev2) {
            return rest.len();
        }
        prev2 = prev;
        prev = Some(c);
    }
    0
}

/// Whether one of spaCy's suffix rules matches `rest`, the end of a chunk
/// from its character `c` on (`last`: `c` ends the chunk), after the
/// characters `prev` and `prev2`.
fn suffix_starts_at(rest: &str, c: char, last: bool, prev: Option<char>, prev2: Option<char>) -> bool {
    if last && (SUFFIX_CHARS.contains(c) || is_symbol(c)) {
        return true;
    }
    if c == '.' && rest.len() >= 2 && rest.bytes().all(|d| d == b'.') {
        return true;
    }
    // "……" is a suffix of its own, and starts left of "…".
    if matches!(rest, "'s" | "'S" | "’s" | "’S" | "……") {
        return true;
    }
    let Some(p) = prev else { return false };
    if p.is_ascii_digit() {
        if last && (c == '+' || CURRENCY.contains(c)) || CURRENCY_WORDS.contains(&rest) {
            return true;
        }
        // No unit is over ten bytes or starts with a digit.
        if rest.len() <= 12 && !rest.as_bytes()[0].is_ascii_digit() && UNITS.contains(&rest) {
            return true;
        }
    }
    if last && c == '.' {
        let after_degree = matches!(p, 'F' | 'f' | 'C' | 'c' | 'K' | 'k') && prev2 == Some('°');
        let after_lower = is_lower_class(p)
            || p.is_ascii_digit()
            || matches!(p, '%' | '²' | '-' | '+' | '…')
            || QUOTES.contains(p)
            || PUNCT.contains(p)
            // spaCy joins its punctuation with `|` inside this rule's
            // character class, so `|` is in the class too.
            || p == '|';
        let after_two_upper = is_upper_class(p) && prev2.is_some_and(is_upper_class);
        return after_degree || after_lower || after_two_upper;
    }
    false
}

/// Whether spaCy's `URL_MATCH` (`spacy/lang/tokenizer_exceptions.py`,
/// 3.8) matches the whole of `s`, which spaCy then keeps as one token:
///
/// ```text
/// (scheme://)? (userinfo@)? (IPv4 | host.tld) (:port)? ([/?#]rest)?
/// ```
///
/// Python's regex backtracks over where the scheme and the user info end
/// (the user info may hold anything, `@` included); the loops below try
/// each place, which is the same as asking whether any match exists.
fn is_url(s: &str) -> bool {
    // Both an address and a host name have a period.
    if !s.contains('.') {
        return false;
    }
    // `(?:[\w\+\-\.]{2,})://`: two or more such characters from the start.
    let scheme_ends = s.match_indices("://").map(|(at, _)| at).filter(|&at| {
        let scheme = &s[..at];
        scheme.chars().nth(1).is_some() && scheme.chars().all(|c| is_word_char(c) || matches!(c, '+' | '-' | '.'))
    });
    std::iter::once(0).chain(scheme_ends.map(|at| at + 3)).any(|start| {
        let rest = &s[start..];
        // `(?:\S+(?::\S*)?@)?`: nothing, or anything before any `@`.
        is_url_host(rest) || rest.match_indices('@').any(|(at, _)| at > 0 && is_url_host(&rest[at + 1..]))
    })
}

/// Python's `\w`: letters, digits (of any script) and the underscore.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Python's `\d`: a decimal digit of any script (category Nd).
fn is_decimal(c: char) -> bool {
    c.is_ascii_digit()
        || (!c.is_ascii()
            && unicode_general_category::get_general_category(c)
                == unicode_general_category::GeneralCategory::DecimalNumber)
}

/// `[A-Za-z0-9\u00a1-\uffff]`: what a host name's labels are made of.
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c)
}

/// `s` starts with `lead` then `groups` times a period and one to three
/// digits: the private networks URL_MATCH refuses (`10.1.2.3`, ...).
fn private_network(s: &str, lead: &str, groups: usize) -> bool {
    let Some(mut rest) = s.strip_prefix(lead) else { return false };
    for group in 0..groups {
        let Some(after) = rest.strip_prefix('.') else { return false };
        let digits: usize = after.chars().take_while(|&c| is_decimal(c)).map(char::len_utf8).sum();
        let count = after[..digits].chars().count();
        // The last group needs only to start; the others end at a period.
        if count == 0 || (group + 1 < groups && count > 3) {
            return false;
        }
        rest = &after[digits..];
    }
    true
}

/// The part after the scheme and the user info: an IPv4 address or a host
/// name with a lower-case top-level domain, then an optional port and path.
fn is_url_host(rest: &str) -> bool {
    let lead_172 = rest.strip_prefix("172.").is_some_and(|after| {
        let second = after.as_bytes().get(..2).filter(|d| d.iter().all(u8::is_ascii_digit));
        second.is_some_and(|d| (16..=31).contains(&((d[0] - b'0') * 10 + d[1] - b'0')))
            && private_network(&after[2..], "", 2)
    });
    if private_network(rest, "10", 3)
        || private_network(rest, "127", 3)
        || private_network(rest, "169.254", 2)
        || private_network(rest, "192.168", 2)
        || lead_172
    {
        return false;
    }
    // The host runs to the first character no label, period or address
    // holds; what follows must be the port or the path, so it cannot end
    // sooner.
    let end = rest.find(|c: char| !(is_host_char(c) || matches!(c, '.' | '_' | '-'))).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    let tail_ok = match tail.chars().next() {
        None | Some('/' | '?' | '#') => true,
        Some(':') => {
            let digits: usize = tail[1..].chars().take_while(|&c| is_decimal(c)).map(char::len_utf8).sum();
            let count = tail[1..1 + digits].chars().count();
            (2..=5).contains(&count) && matches!(tail[1 + digits..].chars().next(), None | Some('/' | '?' | '#'))
        }
        Some(_) => false,
    };
    tail_ok && (is_ipv4(host) || is_host_name(host))
}

/// URL_MATCH's dotted IPv4 address: the first octet 1 to 223, the last 1 to
/// 254, none with a leading zero but the middle two (`1?\d{1,2}`).
fn is_ipv4(host: &str) -> bool {
    let groups: Vec<&str> = host.split('.').collect();
    if groups.len() != 4 || groups.iter().any(|g| g.is_empty() || !g.chars().all(is_decimal)) {
        return false;
    }
    // Beyond ASCII, `\d` matches but `[1-9]` and the like do not.
    let value = |g: &str| g.parse::<u32>().ok();
    let no_lead_zero = |g: &str| !g.starts_with('0');
    let len = |g: &str| g.chars().count();
    let first = groups[0];
    let first_ok = len(first) <= 3 && no_lead_zero(first) && value(first).is_some_and(|v| (1..=223).contains(&v));
    let middle_ok = |g: &str| match len(g) {
        1 | 2 => true,
        3 => value(g).is_some_and(|v| (100..=255).contains(&v)),
        _ => false,
    };
    let last = groups[3];
    let last_ok = len(last) <= 3 && no_lead_zero(last) && value(last).is_some_and(|v| (1..=254).contains(&v));
    first_ok && middle_ok(groups[1]) && middle_ok(groups[2]) && last_ok
}

/// `(?:(?:H[H_-]{0,62})?H\.)+[ALPHA_LOWER]{2,63}`: labels of host
/// characters (hyphens and underscores inside), then a lower-case domain.
fn is_host_name(host: &str) -> bool {
    let Some((labels, tld)) = host.rsplit_once('.') else { return false };
    let tld_len = tld.chars().count();
    let label_ok = |label: &str| {
        let (first, last) = (label.chars().next(), label.chars().next_back());
        first.is_some_and(is_host_char)
            && last.is_some_and(is_host_char)
            && label.chars().count() <= 64
            && label.chars().all(|c| is_host_char(c) || matches!(c, '_' | '-'))
    };
    (2..=63).contains(&tld_len) && tld.chars().all(is_lower_class) && labels.split('.').all(label_ok)
}

/// Byte ranges of the infixes of `s`.
fn infixes(s: &str) -> Vec<(usize, usize)> {
    // Every infix has a character that is neither a letter nor a digit.
    if s.chars().all(|c| c.is_ascii_digit() || is_plain_letter(c)) {
        return Vec::new();
    }
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let prev = if i > 0 { Some(chars[i - 1].1) } else { None };
        let next = chars.get(i + 1).map(|x| x.1);
        let end_of = |j: usize| chars.get(j).map_or(s.len(), |x| x.0);
        // Ellipses: two or more periods, or the ellipsis character.
        if c == '.' && next == Some('.') {
            let mut j = i;
            while j < chars.len() && chars[j].1 == '.' {
                j += 1;
            }
            found.push((at, end_of(j)));
            i = j;
            continue;
        }
        if c == '…' || is_symbol(c) {
            found.push((at, end_of(i + 1)));
            i += 1;
            continue;
        }
        if let (Some(p), Some(n)) = (prev, next) {
            let alpha = is_alpha_class;
            let hit = (p.is_ascii_digit() && matches!(c, '+' | '-' | '*' | '^') && (n.is_ascii_digit() || n == '-'))
                || (c == '.' && (is_lower_class(p) || QUOTES.contains(p)) && (is_upper_class(n) || QUOTES.contains(n)))
                || (c == ',' && alpha(p) && alpha(n))
                || (matches!(c, ':' | '<' | '>' | '=' | '/') && (alpha(p) || p.is_ascii_digit()) && alpha(n));
            if hit {
                found.push((at, end_of(i + 1)));
                i += 1;
                continue;
            }
            // Dashes between letters (or a digit and a letter): -, –, —, --, ---, ——, ~.
            if (alpha(p) || p.is_ascii_digit()) && matches!(c, '-' | '–' | '—' | '~') {
                let mut j = i + 1;
                let run = match c {
                    '-' => ["--", "---"].iter().rev().find(|d| s[at..].starts_with(**d)).map_or(1, |d| d.len()),
                    '—' if s[at..].starts_with("——") => 2,
                    _ => 1,
                };
                j = j.max(i + run);
                if chars.get(j).is_some_and(|x| is_alpha_class(x.1)) {
                    found.push((at, end_of(j)));
                    i = j;
                    continue;
                }
            }
        }
        i += 1;
    }
    found
}

/// spaCy's `_split_affixes` and `_attach_tokens`: the tokens of a chunk by
/// the affix, URL and infix rules, and with `specials` by the exceptions
/// too (without them, the tokens of an exception are the pattern spaCy's
/// special-case matcher looks for).
fn split_chunk<'a>(mut s: &'a str, out: &mut Vec<&'a str>, specials: bool) {
    let exception = |s: &str| if specials { exception(s) } else { None };
    let mut prefixes: Vec<&'a str> = Vec::new();
    let mut suffixes: Vec<&'a str> = Vec::new();
    let mut last_len = usize::MAX;
    while !s.is_empty() && s.len() != last_len {
        if exception(s).is_some() {
            break;
        }
        last_len = s.len();
        let pre = prefix_len(s);
        if pre > 0 && pre < s.len() && exception(&s[pre..]).is_some() {
            prefixes.push(&s[..pre]);
            s = &s[pre..];
            break;
        }
        let suf = suffix_len(&s[pre..]);
        if suf > 0 && suf < s.len() && exception(&s[..s.len() - suf]).is_some() {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
            break;
        }
        if pre > 0 && suf > 0 && pre + suf <= s.len() {
            prefixes.push(&s[..pre]);
            suffixes.push(&s[s.len() - suf..]);
            s = &s[pre..s.len() - suf];
        } else if pre > 0 {
            prefixes.push(&s[..pre]);
            s = &s[pre..];
        } else if suf > 0 {
            suffixes.push(&s[s.len() - suf..]);
            s = &s[..s.len() - suf];
        }
    }
    out.extend(prefixes);
    if !s.is_empty() {
        if let Some(parts) = exception(s) {
            out.extend(exception_slices(s, parts));
        } else if is_url(s) {
            out.push(s);
        } else {
            let mut start = 0;
            for (a, b) in infixes(s) {
                if a == 0 {
                    continue;
                }
                if a != start {
                    out.push(&s[start..a]);
                }
                out.push(&s[a..b]);
                start = b;
            }
            if start < s.len() {
                out.push(&s[start..]);
            }
        }
    }
    out.extend(suffixes.into_iter().rev());
}

/// The tokens of an exception as slices of the text it was found in (spaCy
/// requires an exception's pieces to spell its form), so that every token
/// keeps its position in the text.
fn exception_slices<'a>(form: &'a str, parts: &[&str]) -> Vec<&'a str> {
    let mut slices = Vec::with_capacity(parts.len());
    let mut at = 0;
    for part in parts {
        match form[at..].find(part) {
            Some(i) => {
                slices.push(&form[at + i..at + i + part.len()]);
                at += i + part.len();
            }
            // Not a spelling of the form: keep what is left as one token.
            None => {
                slices.push(&form[at..]);
                at = form.len();
            }
        }
    }
    slices.retain(|t| !t.is_empty());
    slices
}

/// Byte range of `token` inside `chunk`, when it is a slice of it.
fn range_in(chunk: &str, token: &str) -> Option<(usize, usize)> {
    let start = (token.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize)?;
    (start + token.len() <= chunk.len()).then_some((start, start + token.len()))
}

/// Puts exceptions back together where affix splitting cut through them
/// (`p` `.` → `p.`, `'` `em` → `'em`, the eleven pieces of `(╯°□°）╯︵┻━┻`),
/// as spaCy's special-case matcher does after splitting.
///
/// Like it, this finds every run of two or more adjacent tokens that are
/// an exception as the rules without exceptions split it (`m` `.` for
/// `m.`; `im` is one token, so `im.` is `i` `m.`), and takes the longest
/// runs first, the earlier of two equally long, each unless its first or
/// last token is in a run taken before. spaCy matches over the whole text,
/// where one space between chunks is no token, so a run may also cross
/// into the chunks around (`>` `:` `(` in `> :(`): such a run merges
/// nothing, since its text has a space, but it is taken, and so keeps a
/// shorter run inside the chunk (`:(`) from merging.
fn merge_exceptions<'a>(text: &'a str, chunk: &'a str, tokens: &mut Vec<&'a str>, from: usize) {
    let own = special_runs(&tokens[from..]);
    if own.is_empty() {
        return;
    }
    let (before, after) = neighbours(text, chunk);
    let first = before.len();
    let last = first + tokens.len() - from;
    let mut runs = if before.is_empty() && after.is_empty() {
        own.iter().map(|&(at, n)| (at + first, n)).collect()
    } else {
        let all: Vec<&str> = before.iter().chain(&tokens[from..]).chain(&after).copied().collect();
        let mut runs = special_runs(&all);
        runs.retain(|&(at, n)| at < last && at + n > first);
        runs
    };
    runs.sort_by_key(|&(at, n)| (std::cmp::Reverse(n), at));
    // spaCy's `_filter_special_spans`: a run is taken when neither its first
    // nor its last token is in a run seen before, taken or not.
    let mut seen = vec![false; last + after.len()];
    let mut kept: Vec<(usize, usize)> = Vec::new();
    for (at, n) in runs {
        if !seen[at] && !seen[at + n - 1] && at >= first && at + n <= last {
            kept.push((at - first + from, n));
        }
        seen[at..at + n].fill(true);
    }
    // From the right, so that the indices of the runs still to merge hold.
    kept.sort_by_key(|&(at, _)| std::cmp::Reverse(at));
    for (at, n) in kept {
        let (start, _) = range_in(chunk, tokens[at]).expect("runs start at a token of the chunk");
        let (_, end) = range_in(chunk, tokens[at + n - 1]).expect("runs end at a token of the chunk");
        let form = &chunk[start..end];
        let parts = exception(form).expect("runs spell an exception");
        tokens.splice(at..at + n, exception_slices(form, parts));
    }
}

/// spaCy's special-case matcher: the exceptions that the rules without
/// exceptions cut into two or more tokens (`m.` into `m` `.`, not `)-:`
/// into `)` `-:`, as its pattern is `)` `-` `:`), as a trie over those
/// tokens. Most tokens start no pattern, and leave after one lookup.
struct SpecialMatcher {
    next: Vec<HashMap<&'static str, usize, BuildHasherDefault<Fnv>>>,
    ends_pattern: Vec<bool>,
    /// The first bytes of the tokens that start a pattern, and the longest
    /// token in any: most tokens are refused by these without a hash.
    starts: [bool; 256],
    longest_token: usize,
}

fn special_matcher() -> &'static SpecialMatcher {
    static MATCHER: OnceLock<SpecialMatcher> = OnceLock::new();
    MATCHER.get_or_init(|| {
        let mut matcher = SpecialMatcher {
            next: vec![HashMap::default()],
            ends_pattern: vec![false],
            starts: [false; 256],
            longest_token: 0,
        };
        for form in exceptions().keys() {
            let mut pattern = Vec::new();
            split_chunk(form, &mut pattern, false);
            // One token is the exception itself: matching it changes nothing.
            if pattern.len() < 2 {
                continue;
            }
            matcher.starts[usize::from(pattern[0].as_bytes()[0])] = true;
            matcher.longest_token = pattern.iter().map(|t| t.len()).fold(matcher.longest_token, usize::max);
            let mut node = 0;
            for token in pattern {
                node = match matcher.next[node].get(token) {
                    Some(&child) => child,
                    None => {
                        let child = matcher.next.len();
                        matcher.next.push(HashMap::default());
                        matcher.ends_pattern.push(false);
                        matcher.next[node].insert(token, child);
                        child
                    }
                };
            }
            matcher.ends_pattern[node] = true;
        }
        matcher
    })
}

/// Every run of tokens that spaCy's special-case matcher finds, as (first
/// token, number of tokens).
fn special_runs(tokens: &[&str]) -> Vec<(usize, usize)> {
    let matcher = special_matcher();
    let mut runs = Vec::new();
    for (i, first) in tokens.iter().enumerate() {
        if first.len() > matcher.longest_token
            || !first.as_bytes().first().is_some_and(|&b| matcher.starts[usize::from(b)])
        {
            continue;
        }
        let mut node = 0;
        for (j, token) in tokens.iter().enumerate().skip(i) {
            if token.len() > matcher.longest_token {
                break;
            }
            let Some(&child) = matcher.next[node].get(token) else { break };
            node = child;
            if matcher.ends_pattern[node] {
                runs.push((i, j + 1 - i));
            }
        }
    }
    runs
}

/// The tokens, before any merging, of the chunks that one space each joins
/// to `chunk` on either side, up to the longest exception's length: where
/// spaCy's matcher may find a run that crosses into `chunk`.
fn neighbours<'a>(text: &'a str, chunk: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let longest = exception_bits().longest;
    let (start, end) = range_in(text, chunk).expect("chunks are slices of the text");
    let mut before = Vec::new();
    let mut at = start;
    while start - at <= longest {
        // A chunk, then one space (a second would be a token of its own).
        let Some(gap) = at.checked_sub(1).filter(|&gap| text.as_bytes()[gap] == b' ') else { break };
        if text[..gap].chars().next_back().is_none_or(is_space) {
            break;
        }
        let left = text[..gap].rfind(is_space).map_or(0, |s| s + text[s..].chars().next().map_or(0, char::len_utf8));
        let mut tokens = Vec::new();
        split_chunk(&text[left..gap], &mut tokens, true);
        tokens.append(&mut before);
        before = tokens;
        at = left;
    }
    let mut after = Vec::new();
    let mut at = end;
    while at - end <= longest {
        if text.as_bytes().get(at) != Some(&b' ') || text[at + 1..].chars().next().is_none_or(is_space) {
            break;
        }
        let right = text[at + 1..].find(is_space).map_or(text.len(), |e| at + 1 + e);
        split_chunk(&text[at + 1..right], &mut after, true);
        at = right;
    }
    (before, after)
}

/// The words of `text` as datatrove's English `split_into_words` gives them.
pub fn split_into_words(text: &str) -> Vec<&str> {
    tokens(text, false)
}

/// The byte ranges of [`split_into_words`]' words, for texts under 4 GiB.
pub(crate) fn word_offsets(text: &str) -> Vec<(u32, u32)> {
    let base = text.as_ptr() as usize;
    let mut offsets = Vec::with_capacity(text.len() / 5);
    let _ = for_each_token(text, false, Split::Shortcut, |w| {
        let start = w.as_ptr() as usize - base;
        offsets.push((start as u32, (start + w.len()) as u32));
        ControlFlow::Continue(())
    });
    offsets
}

/// How many words [`split_into_words`] gives, or `limit` when there are
/// more; splitting stops there.
pub fn count_words_up_to(text: &str, limit: usize) -> usize {
    let mut count = 0;
    let _ = for_each_token(text, false, Split::Shortcut, |_| {
        count += 1;
        if count >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    count.min(limit)
}

/// spaCy's tokens of `text`, whitespace tokens included: spaCy attaches one
/// space to the token before it and makes any other run of whitespace a
/// token of its own (which matters to sentence splitting).
pub fn split_into_tokens(text: &str) -> Vec<&str> {
    tokens(text, true)
}

/// Python's `str.isspace` for ASCII bytes: unlike `u8::is_ascii_whitespace`
/// it counts the vertical tab, and unlike `char::is_whitespace` the four
/// information separators (0x1C..0x1F), which spaCy splits on.
fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

/// Bitsets over the exceptions' forms, keyed by length and first, middle
/// and last byte, that most chunks miss (and skip the hash lookup): one for
/// all forms (about one chunk in a hundred hits it by chance), and a small
/// one that stays in the core's cache for the forms of only ASCII letters
/// or only digits, the shape of most words. `marks` has the last byte of
/// the forms that are such a word and one ASCII mark ("etc.", "goin'").
struct ExceptionBits {
    all: Vec<u64>,
    plain: Vec<u64>,
    marks: u128,
    /// The longest form's length in bytes: a longer chunk is never one,
    /// and is not hashed whole to find that out.
    longest: usize,
}

fn exception_key(w: &[u8], bits: u32) -> usize {
    let x = w.len() as u64 | u64::from(w[0]) << 32 | u64::from(w[w.len() / 2]) << 40 | u64::from(w[w.len() - 1]) << 48;
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

const ALL_BITS: u32 = 17;
const PLAIN_BITS: u32 = 13;

fn is_plain_ascii(w: &[u8]) -> bool {
    w.iter().all(u8::is_ascii_alphabetic) || w.iter().all(u8::is_ascii_digit)
}

fn exception_bits() -> &'static ExceptionBits {
    static BITS: OnceLock<ExceptionBits> = OnceLock::new();
    BITS.get_or_init(|| {
        let set = |bits: &mut [u64], k: usize| bits[k / 64] |= 1 << (k % 64);
        let mut b = ExceptionBits {
            all: vec![0; 1 << (ALL_BITS - 6)],
            plain: vec![0; 1 << (PLAIN_BITS - 6)],
            marks: 0,
            longest: 0,
        };
        for form in exceptions().keys().map(|f| f.as_bytes()).filter(|f| !f.is_empty()) {
            b.longest = b.longest.max(form.len());
            set(&mut b.all, exception_key(form, ALL_BITS));
            if is_plain_ascii(form) {
                set(&mut b.plain, exception_key(form, PLAIN_BITS));
            }
            if let [word @ .., mark] = form {
                if !word.is_empty() && mark.is_ascii() && is_plain_ascii(word) {
                    b.marks |= 1 << mark;
                }
            }
        }
        b
    })
}

fn bit_is_set(bits: &[u64], k: usize) -> bool {
    bits[k / 64] & (1 << (k % 64)) != 0
}

/// The tokens of the exception spelled `form`, if it is one.
#[inline]
fn exception(form: &str) -> Option<&'static Vec<&'static str>> {
    let bits = exception_bits();
    if form.is_empty() || form.len() > bits.longest || !bit_is_set(&bits.all, exception_key(form.as_bytes(), ALL_BITS))
    {
        return None;
    }
    exceptions().get(form)
}

/// Whether a word of only ASCII letters or only digits is an exception.
#[inline]
fn is_plain_exception(word: &str) -> bool {
    bit_is_set(&exception_bits().plain, exception_key(word.as_bytes(), PLAIN_BITS)) && exceptions().contains_key(word)
}

/// A letter that no affix, infix or URL rule looks at: a chunk made only
/// of these is one token (or an exception). The Letterlike Symbols and
/// the enclosed letters are alphabetic but count as symbols to spaCy.
#[inline]
fn is_plain_letter(c: char) -> bool {
    // `is_alphabetic` searches a table, and a page of non-Latin text asks
    // for every letter.
    static BMP: OnceLock<BmpBits> = OnceLock::new();
    let plain = |c: char| c.is_alphabetic() && !is_symbol(c);
    BMP.get_or_init(|| BmpBits::new(plain)).get(c).unwrap_or_else(|| plain(c))
}

/// A chunk's tokens when it is a word of plain letters or of ASCII
/// digits, possibly followed by one ASCII punctuation mark that spaCy
/// splits off it, and no exception can be involved ("etc.", "cannot,"):
/// most chunks of prose. `None` for the rest, which go through the full
/// rules.
#[inline]
fn simple_chunk(chunk: &str) -> Option<(&str, Option<&str>)> {
    let bytes = chunk.as_bytes();
    let last = *bytes.last()?;
    let has_mark = bytes.len() > 1 && last.is_ascii() && !last.is_ascii_alphanumeric();
    let word = if has_mark { &chunk[..chunk.len() - 1] } else { chunk };
    // One pass over ASCII words; the letters of other scripts one by one.
    let (mut letters, mut digits) = (true, true);
    for &b in word.as_bytes() {
        letters &= b.is_ascii_alphabetic();
        digits &= b.is_ascii_digit();
    }
    if !letters && !digits && (word.is_ascii() || !word.chars().all(is_plain_letter)) {
        return None;
    }
    let word_is_exception = if letters || digits { is_plain_exception(word) } else { exception(word).is_some() };
    if !has_mark {
        return (!word_is_exception).then_some((chunk, None));
    }
    let split_off = if last == b'.' {
        // spaCy's period rule, for what can precede it here.
        let mut before = word.chars().rev();
        let (p, p2) = (before.next()?, before.next());
        digits || is_lower_class(p) || (is_upper_class(p) && p2.is_some_and(is_upper_class))
    } else {
        SUFFIX_CHARS.contains(char::from(last))
    };
    // A word of other scripts and a mark may still spell an exception.
    let chunk_may_be_exception = !(letters || digits) || exception_bits().marks >> last & 1 == 1;
    let chunk_is_exception = chunk_may_be_exception && exception(chunk).is_some();
    (split_off && !word_is_exception && !chunk_is_exception).then(|| (word, Some(&chunk[word.len()..])))
}

/// The tokens of one whitespace-free chunk, by the full rules.
fn chunk_tokens<'a>(text: &'a str, chunk: &'a str, out: &mut Vec<&'a str>) {
    let from = out.len();
    split_chunk(chunk, out, true);
    if out.len() - from > 1 {
        merge_exceptions(text, chunk, out, from);
    }
}

fn tokens(text: &str, with_space: bool) -> Vec<&str> {
    tokens_by(text, with_space, Split::Shortcut)
}

/// Bytes before the first ASCII whitespace or non-ASCII byte of `bytes`.
#[inline]
fn ascii_chunk_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    // Eight bytes at a time: a byte below 0x21 or at 0x80 and above gets its
    // high bit set (a borrow can mark bytes after the first, never before).
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let marked = (x.wrapping_sub(0x21 * ONES) | x) & HIGH;
        if marked == 0 {
            at += 8;
            continue;
        }
        at += marked.trailing_zeros() as usize / 8;
        // Control bytes other than whitespace belong to the chunk.
        if bytes[at] >= 0x80 || ascii_space(bytes[at]) {
            return at;
        }
        at += 1;
    }
    at + bytes[at..].iter().position(|&b| ascii_space(b) || b >= 0x80).unwrap_or(bytes.len() - at)
}

/// The length of the word at the start of `bytes` when it is one to seven
/// ASCII letters followed by ASCII whitespace, tested eight bytes at once.
#[inline]
fn short_ascii_word(bytes: &[u8]) -> Option<usize> {
    let x = u64::from_le_bytes(bytes.get(..8)?.try_into().expect("eight bytes"));
    let len = ((x.wrapping_sub(0x21 * ONES) | x) & HIGH).trailing_zeros() as usize / 8;
    if len == 0 || len == 8 || !ascii_space(bytes[len]) {
        return None;
    }
    // Folded to lower case, a letter is 0x61..=0x7a: adding 0x1f sets its
    // high bit, adding 0x05 does not. The word's bytes are ASCII, so no
    // carry leaves them; bytes after the word may carry, into later bytes.
    let y = x | (0x20 * ONES);
    let letters = y.wrapping_add(0x1f * ONES) & !y.wrapping_add(0x05 * ONES) & HIGH;
    let wanted = HIGH & ((1u64 << (8 * len)) - 1);
    (letters & wanted == wanted).then_some(len)
}

/// How chunks are split: the shortcut for common chunks is checked
/// against the full rules in the tests.
#[derive(Clone, Copy, PartialEq)]
enum Split {
    Shortcut,
    #[cfg_attr(not(test), allow(dead_code))]
    FullRules,
}

fn tokens_by(text: &str, with_space: bool, split: Split) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 5);
    let _ = for_each_token(text, with_space, split, |t| {
        out.push(t);
        ControlFlow::Continue(())
    });
    out
}

/// Calls `f` with each token of `text` in order, until it breaks.
fn for_each_token<'a>(
    text: &'a str,
    with_space: bool,
    split: Split,
    mut f: impl FnMut(&'a str) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut any = false;
    let mut chunk_buf = Vec::new();
    while i < bytes.len() {
        let b = bytes[i];
        // One space between words: spaCy attaches it to the word before.
        if b == b' ' && bytes.get(i + 1).is_some_and(|&n| n < 0x80 && !ascii_space(n)) {
            i += 1;
            continue;
        }
        // The commonest chunk: a short word of ASCII letters, then whitespace.
        if split == Split::Shortcut {
            if let Some(len) = short_ascii_word(&bytes[i..]) {
                let word = &text[i..i + len];
                if !is_plain_exception(word) {
                    any = true;
                    f(word)?;
                    i += len;
                    continue;
                }
            }
        }
        let rest = &text[i..];
        if ascii_space(b) || (b >= 0x80 && rest.starts_with(is_space)) {
            let gap = rest.len() - rest.trim_start_matches(is_space).len();
            let space = &rest[..gap];
            if with_space && space != " " {
                // After a token, its one trailing space is not part of the run.
                let attached = any && space.starts_with(' ');
                any = true;
                f(if attached { &space[1..] } else { space })?;
            }
            i += gap;
            continue;
        }
        let mut len = ascii_chunk_len(&bytes[i..]);
        if i + len < bytes.len() && bytes[i + len] >= 0x80 {
            len = rest.find(is_space).unwrap_or(rest.len());
        }
        let chunk = &rest[..len];
        i += len;
        any = true;
        match if split == Split::Shortcut { simple_chunk(chunk) } else { None } {
            Some((word, None)) => f(word)?,
            Some((word, Some(mark))) => {
                f(word)?;
                f(mark)?;
            }
            None => {
                chunk_buf.clear();
                chunk_tokens(text, chunk, &mut chunk_buf);
                for &t in &chunk_buf {
                    f(t)?;
                }
            }
        }
    }
    ControlFlow::Continue(())
}

/// Byte offsets where spaCy's Sentencizer starts a sentence in `text`:
/// always 0, then each token that is not punctuation after a token that
/// ends a sentence (a single sentence-final punctuation mark). Stops after
/// the first `limit`.
fn sentence_starts_up_to(text: &str, limit: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut seen_end = false;
    let _ = for_each_token(text, true, Split::Shortcut, |token| {
        if starts.len() >= limit {
            return ControlFlow::Break(());
        }
        let mut chars = token.chars();
        let is_end = matches!((chars.next(), chars.next()), (Some(c), None) if crate::text::is_sentence_end(c));
        if seen_end && !is_end && !crate::text::is_all_punct(token) {
            starts.push(range_in(text, token).expect("tokens are slices of the text").0);
            seen_end = false;
        } else if is_end {
            seen_end = true;
        }
        ControlFlow::Continue(())
    });
    starts
}

/// Byte offsets where spaCy's Sentencizer starts a sentence in `text`.
pub fn sentence_starts(text: &str) -> Vec<usize> {
    sentence_starts_up_to(text, usize::MAX)
}

/// How many sentences datatrove's `split_into_sentences` finds (at least
/// one: it returns the whole text when spaCy finds no token), or `limit`
/// when there are more; reading stops there.
pub fn count_sentences_up_to(text: &str, limit: usize) -> usize {
    sentence_starts_up_to(text, limit.max(1)).len()
}

/// How many sentences datatrove's `split_into_sentences` finds.
pub fn count_sentences(text: &str) -> usize {
    count_sentences_up_to(text, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of one punctuation mark, 256 KiB long, splits into one
    /// token per mark: each strip of a prefix and a suffix reads only the
    /// chunk's ends. (Reading the whole rest each time, as before, took 35
    /// s for 160,000 marks in a release build, and hours in this test.)
    /// See: issue 13, defect 1.
    #[test]
    fn r13_long_runs_of_punctuation_split_in_linear_time() {
        for mark in "={}()[*!?_\",:;#<>$%&+`".chars() {
            let text = mark.to_string().repeat(1 << 18);
            let words = split_into_words(&text);
            assert_eq!(words.len(), 1 << 18, "{mark:?}");
            assert!(words.iter().all(|w| w.len() == 1), "{mark:?}");
        }
        let dots = format!("a{}", ".".repeat(1 << 20));
        assert_eq!(split_into_words(&dots).iter().map(|w| w.len()).collect::<Vec<_>>(), [1, 1 << 20]);
    }

    /// The suffix rules tried at every character of the chunk: the
    /// reference that the windowed [`suffix_len`] must equal.
    fn suffix_len_full_scan(s: &str) -> usize {
        let (mut prev, mut prev2): (Option<char>, Option<char>) = (None, None);
        let mut chars = s.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if suffix_starts_at(&s[at..], c, chars.peek().is_none(), prev, prev2) {
                return s.len() - at;
            }
            prev2 = prev;
            prev = Some(c);
        }
        0
    }

    #[test]
    fn the_suffix_rule_reads_only_the_end_and_agrees_with_a_full_scan() {
        let pieces = [
            "a", "Z", "é", "9", "0", ".", "..", "…", "'s", "’s", "'S", "km", "mph", "kg", "°", "C", "F", "$", "€", "+",
            "%", "²", "-", ")", "\"", "”", "!", "?", "=", "ü", "Ж", "日", "'", "/", ",", ":",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..50_000 {
            let len = [1, 2, 3, 6, 10, 20, 40][next(7)];
            let s: String = (0..len).map(|_| pieces[next(pieces.len())]).collect();
            assert_eq!(suffix_len(&s), suffix_len_full_scan(&s), "{s:?}");
        }
    }

    /// Web-like text (URLs, mail, code, emoticons, currencies, symbols,
    /// odd spaces, glued marks) and the words spaCy gives it, written by
    /// scripts/parity/words_fixture.py; its first texts are the cases that
    /// once split differently. See: issue 13, web text.
    #[test]
    fn r13_web_text_splits_as_spacy_does() {
        // The folder read when the test runs, not baked in when it was
        // compiled: a target dir shared between checkouts reuses test binaries.
        let dir: std::path::PathBuf =
            std::env::var_os("CARGO_MANIFEST_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let path = dir.join("../fixtures/words/spacy_web.jsonl");
        let fixture = std::fs::read_to_string(&path).expect("the word split fixture");
        let mut texts = 0;
        for line in fixture.lines() {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let text = case["text"].as_str().expect("text");
            let expected: Vec<&str> =
                case["words"].as_array().expect("words").iter().map(|w| w.as_str().expect("a word")).collect();
            assert_eq!(split_into_words(text), expected, "{text:?}");
            assert_eq!(tokens_by(text, false, Split::FullRules), expected, "{text:?}");
            texts += 1;
        }
        assert!(texts > 400, "{texts} texts");
    }

    #[test]
    fn follows_spacy_on_common_english() {
        let cases = [
            ("Hello, world!", vec!["Hello", ",", "world", "!"]),
            ("I don't know.", vec!["I", "do", "n't", "know", "."]),
            ("(the U.S. economy)", vec!["(", "the", "U.S.", "economy", ")"]),
            ("John's well-known e-mail", vec!["John", "'s", "well", "-", "known", "e", "-", "mail"]),
            ("\"Quoted\" text...", vec!["\"", "Quoted", "\"", "text", "..."]),
            ("see https://example.com/a?b=c, ok", vec!["see", "https://example.com/a?b=c", ",", "ok"]),
            ("costs $10.50 or 20km", vec!["costs", "$", "10.50", "or", "20", "km"]),
            ("Mr. Smith went home.", vec!["Mr.", "Smith", "went", "home", "."]),
            ("and/or wait...what", vec!["and/or", "wait", "...", "what"]),
            ("NASA. A.", vec!["NASA", ".", "A."]),
            ("place—p. 'em.\" (him).", vec!["place", "—", "p.", "'em", ".", "\"", "(", "him", ")", "."]),
            ("two  spaces\tand\n\nlines", vec!["two", "spaces", "and", "lines"]),
        ];
        for (text, expected) in cases {
            assert_eq!(split_into_words(text), expected, "{text}");
        }
        assert_eq!(
            split_into_tokens("two  spaces\tand\n\nlines"),
            ["two", " ", "spaces", "\t", "and", "\n\n", "lines"]
        );
    }

    #[test]
    fn the_shortcut_splits_as_the_full_rules() {
        let mut words: Vec<String> = [
            "word",
            "Word",
            "WORD",
            "a",
            "I",
            "p",
            "etc",
            "Mr",
            "cannot",
            "Cannot",
            "gonna",
            "don",
            "ca",
            "ol",
            "em",
            "s",
            "U",
            "US",
            "PhD",
            "aB",
            "iOS",
            "am",
            "pm",
            "km",
            "co",
            "Inc",
            "vs",
            "Jan",
            "e",
            "ll",
            "ve",
            "na",
            "ta",
            "t",
            "ü",
            "naïve",
            "émigré",
            "Ärger",
            "мир",
            "Мир",
            "κόσμος",
            "ΑΘΗΝΑ",
            "मनुष्य",
            "人人生而自由",
            "حقوق",
            "ℂ",
            "ⓐb",
            "aℎ",
            "ß",
            "ǅ",
            "ﬁ",
            "ŉ",
            "ʼn",
            "ʹ",
            "ª",
            "º",
            "µ",
            "ı",
            "İ",
            "ǰ",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        let forms: Vec<String> = exceptions().keys().map(|f| f.to_string()).collect();
        words.extend(forms.iter().filter(|f| f.chars().all(char::is_alphabetic)).cloned());
        let marks: Vec<char> =
            (0x21u8..0x7f).map(char::from).filter(|c| !c.is_ascii_alphanumeric()).chain("…’”»。".chars()).collect();
        let mut chunks: Vec<String> = words.clone();
        for w in &words {
            for &m in &marks {
                chunks.push(format!("{w}{m}"));
                chunks.push(format!("{m}{w}"));
                chunks.push(format!("{w}{m}{m}"));
            }
        }
        chunks.extend(forms);
        for chunk in &chunks {
            for text in [chunk.clone(), format!("x {chunk} y"), format!("{chunk}\u{a0}z")] {
                assert_eq!(tokens(&text, false), tokens_by(&text, false, Split::FullRules), "{text:?}");
                assert_eq!(tokens(&text, true), tokens_by(&text, true, Split::FullRules), "{text:?}");
            }
        }
    }

    #[test]
    fn plain_letters_are_the_alphabetic_characters_that_are_not_symbols() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(is_plain_letter(c), c.is_alphabetic() && !is_symbol(c), "{c:?}");
        }
    }

    #[test]
    fn chunks_end_at_whitespace_or_other_scripts() {
        for text in ["", "abc", "abcdefghij", "abcdefgh ij", "a\u{1}b\u{1f}cdefghij\tk", "abcdefghé", "0123456\u{7f}\n"]
        {
            let expected = text.bytes().position(|b| ascii_space(b) || b >= 0x80).unwrap_or(text.len());
            for start in 0..text.len() {
                let bytes = &text.as_bytes()[start..];
                let expected = bytes.iter().position(|&b| ascii_space(b) || b >= 0x80).unwrap_or(bytes.len());
                assert_eq!(ascii_chunk_len(bytes), expected, "{text:?} from {start}");
            }
            assert_eq!(ascii_chunk_len(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn short_words_are_ascii_letters_before_whitespace() {
        let by_definition = |b: &[u8]| {
            let len = b.iter().position(|&c| !c.is_ascii_alphabetic()).unwrap_or(b.len());
            (b.len() >= 8 && (1..8).contains(&len) && ascii_space(b[len])).then_some(len)
        };
        let mut cases: Vec<Vec<u8>> = vec![
            b"a bcdefgh".to_vec(),
            b"abcdefg\n".to_vec(),
            b"abcdefgh ".to_vec(),
            b"abc".to_vec(),
            "ab ÿÿÿÿÿ".as_bytes().to_vec(),
            "word \u{ffff}".as_bytes().to_vec(),
        ];
        // Every byte value in every position of a five-letter word and its terminator.
        for at in 0..6 {
            for v in 0..=255u8 {
                let mut c = b"hello wrld".to_vec();
                c[at] = v;
                cases.push(c);
            }
        }
        for c in cases {
            if std::str::from_utf8(&c).is_ok() {
                assert_eq!(short_ascii_word(&c), by_definition(&c), "{:?}", String::from_utf8_lossy(&c));
            }
        }
    }

    #[test]
    fn no_plain_letter_is_an_affix() {
        for set in [&PREFIX_CHARS, &SUFFIX_CHARS, &PUNCT, &CURRENCY, &QUOTES] {
            assert!(set.all.chars().all(|c| !is_plain_letter(c)), "{}", set.all);
        }
        assert!("…-–—~.,:<>=/+*^'’°%²".chars().all(|c| !is_plain_letter(c)));
    }

    #[test]
    fn sentences_end_at_final_punctuation() {
        assert_eq!(count_sentences(""), 1);
        assert_eq!(count_sentences("One. Two! Three? (Four.) Five"), 5);
        assert_eq!(count_sentences("Wait... what. \"Quoted.\" Next"), 3);
        let text = "Don't stop: 3 words, then (more) words...";
        let all = split_into_words(text).len();
        assert_eq!((0..=all + 1).map(|limit| count_words_up_to(text, limit)).collect::<Vec<_>>(), {
            let mut expected: Vec<usize> = (0..=all).collect();
            expected.push(all);
            expected
        });
        let five = "One. Two! Three? (Four.) Five";
        assert_eq!((0..=6).map(|limit| count_sentences_up_to(five, limit)).collect::<Vec<_>>(), [1, 1, 2, 3, 4, 5, 5]);
    }
}
