//! PII redaction: e-mail addresses, IP addresses (v4 and v6), phone
//! numbers, payment card numbers (Luhn-checked), US social security
//! numbers, IBANs (checksum-checked) and secrets (private-key blocks, cloud
//! and service access keys, bearer tokens). Each match is validated before
//! it is replaced, with a tag (`<EMAIL>`), a fake value (datatrove's
//! placeholder e-mails and IPs, chosen by a hash of the match so output is
//! deterministic), or a salted hash. The text is rewritten; the document is
//! never dropped. Signals count the replacements of each kind.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::{Captures, Regex};
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Ip,
    Phone,
    CreditCard,
    Ssn,
    Iban,
    Secret,
}

const ALL_KINDS: [PiiKind; 7] =
    [PiiKind::Secret, PiiKind::Email, PiiKind::Iban, PiiKind::CreditCard, PiiKind::Ssn, PiiKind::Ip, PiiKind::Phone];

impl PiiKind {
    fn tag(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Ip => "IP_ADDRESS",
            PiiKind::Phone => "PHONE",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::Ssn => "SSN",
            PiiKind::Iban => "IBAN",
            PiiKind::Secret => "SECRET",
        }
    }

    /// Stand-ins that look like the real thing: datatrove's for e-mails
    /// and IPs, reserved or test values for the rest.
    fn fakes(self) -> &'static [&'static str] {
        match self {
            PiiKind::Email => &["email@example.com", "firstname.lastname@example.org"],
            PiiKind::Ip => &[
                "22.214.171.124",
                "126.96.36.199",
                "188.8.131.52",
                "184.108.40.206",
                "220.127.116.11",
                "18.104.22.168",
            ],
            PiiKind::Phone => &["555-0100", "555-0123", "555-0199"],
            PiiKind::CreditCard => &["4111 1111 1111 1111"],
            PiiKind::Ssn => &["000-00-0000"],
            PiiKind::Iban => &["GB00 XXXX 0000 0000 0000 00"],
            PiiKind::Secret => &["<SECRET>"],
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    /// `<EMAIL>`, `<IP_ADDRESS>`, `<PHONE>`, ...
    #[default]
    Tag,
    /// A plausible stand-in value.
    Fake,
    /// `<EMAIL:1f2e...>`: a salted hash, equal for equal values, so that
    /// repeated mentions stay linkable without revealing the value.
    Hash,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Kinds to redact; all by default.
    pub kinds: Vec<PiiKind>,
    pub replacement: Replacement,
    /// Salt of `replacement = "hash"`.
    pub salt: String,
    /// Leave private, loopback and other non-public IP addresses (as datatrove).
    pub public_ips_only: bool,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            kinds: ALL_KINDS.to_vec(),
            replacement: Replacement::Tag,
            salt: String::new(),
            public_ips_only: true,
        }
    }
}

impl FilterConfig for PiiConfig {
    type Filter = Pii;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.kinds.is_empty() {
            return Err("kinds is empty: nothing to redact".into());
        }
        Ok(())
    }

    fn build(self) -> Result<Pii, ConfigError> {
        // Secrets first (a key may contain an e-mail-like string), phones last
        // (their digit runs overlap cards and SSNs, which are checked first).
        let kinds = ALL_KINDS.iter().copied().filter(|k| self.kinds.contains(k)).collect();
        Ok(Pii { kinds, config: self })
    }
}

pub struct Pii {
    config: PiiConfig,
    kinds: Vec<PiiKind>,
}

/// Word boundaries in the patterns are ASCII ones (`(?-u:\b)`): Unicode
/// boundaries would keep the regex crate off its fast DFA on non-ASCII text.
fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid PII pattern"))
}

fn pattern(kind: PiiKind) -> &'static Regex {
    static EMAIL: OnceLock<Regex> = OnceLock::new();
    static IP: OnceLock<Regex> = OnceLock::new();
    static PHONE: OnceLock<Regex> = OnceLock::new();
    static CARD: OnceLock<Regex> = OnceLock::new();
    static SSN: OnceLock<Regex> = OnceLock::new();
    static IBAN: OnceLock<Regex> = OnceLock::new();
    static SECRET: OnceLock<Regex> = OnceLock::new();
    match kind {
        // datatrove's e-mail pattern (an RFC 5322 subset).
        PiiKind::Email => regex(
            &EMAIL,
            r"(?-u:\b)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?-u:\b)",
        ),
        // Dotted quads, and colon-separated hex groups (validated by parsing).
        PiiKind::Ip => regex(
            &IP,
            r"(?P<pre>(?-u:\b)[Vv](?:ersion)?\s?)?(?-u:\b)(?:\d{1,3}\.){3}\d{1,3}(?-u:\b)|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:(?:\d{1,3}\.){3}\d{1,3})?",
        ),
        // North American numbers with separators or brackets (after `+1`,
        // or after a bare `1` before a bare area code), and international
        // numbers written with a leading + (`intl`), whose
        // end the country's number lengths decide (see `phone_end`).
        PiiKind::Phone => regex(
            &PHONE,
            r"(?:\+1[\s.-]?)?\(\d{3}\)\s?\d{3}[\s.-]\d{4}(?-u:\b)|(?:\+1[\s.-]?|(?-u:\b)1[\s.-])?(?-u:\b)\d{3}[\s.-]\d{3}[\s.-]\d{4}(?-u:\b)|(?P<intl>\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?-u:\b))",
        ),
        // A whole run of digits with single spaces or hyphens between them:
        // the card is found inside it (see `card_spans`), so that a price or
        // a year written beside it does not hide it.
        PiiKind::CreditCard => regex(&CARD, r"(?-u:\b)\d(?:[ -]?\d){12,}(?-u:\b)"),
        PiiKind::Ssn => regex(&SSN, r"(?-u:\b)\d{3}-\d{2}-\d{4}(?-u:\b)"),
        PiiKind::Iban => regex(&IBAN, r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)"),
        PiiKind::Secret => regex(
            &SECRET,
            r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----|(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}(?-u:\b)|(?-u:\b)gh[pousr]_[A-Za-z0-9]{36,}(?-u:\b)|(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}(?-u:\b)|(?-u:\b)AIza[0-9A-Za-z_-]{35}(?-u:\b)|(?-u:\b)sk_live_[0-9A-Za-z]{24,}(?-u:\b)|(?i:(?-u:\b)bearer\s+)[A-Za-z0-9._~+/-]{20,}=*",
        ),
    }
}

/// A test that every match of the kind's pattern passes, much cheaper
/// than the pattern: most documents hold no `@`, and no digit, period,
/// digit or two colons close together.
fn may_hold(kind: PiiKind, text: &[u8]) -> bool {
    match kind {
        PiiKind::Email => memchr::memchr(b'@', text).is_some(),
        PiiKind::Ip => {
            let dotted_digits = memchr::memchr_iter(b'.', text)
                .any(|i| i > 0 && text[i - 1].is_ascii_digit() && text.get(i + 1).is_some_and(u8::is_ascii_digit));
            // An IPv6 group list has a colon, at most four hex digits, and a colon.
            let colons = || {
                memchr::memchr_iter(b':', text).any(|i| {
                    let hex = text[i + 1..].iter().take(5).take_while(|b| b.is_ascii_hexdigit()).count();
                    text.get(i + 1 + hex) == Some(&b':') && hex <= 4
                })
            };
            dotted_digits || colons()
        }
        _ => true,
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// The Luhn checksum of payment card numbers.
fn luhn(d: &[u32]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 {
                    x * 2 - 9
                } else {
                    x * 2
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the major card networks: an ISBN or an order number
/// that happens to pass Luhn does not start like a card.
fn card_issuer(d: &[u32]) -> bool {
    let prefix = |n: usize| d.iter().take(n).fold(0u32, |acc, x| acc * 10 + x);
    let len = d.len();
    match d.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&prefix(2)) && len == 16,
        Some(2) => (2221..=2720).contains(&prefix(4)) && len == 16,
        Some(3) => {
            matches!(prefix(2), 34 | 37) && len == 15
                || (3528..=3589).contains(&prefix(4)) && len == 16
                // Diners Club International.
                || ((300..=305).contains(&prefix(3)) || matches!(prefix(2), 36 | 38 | 39)) && len == 14
        }
        Some(6) => {
            (prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3))) && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// Groupings in which card numbers are written: 16 digits as 4-4-4-4, 19
/// as 4-4-4-4-3, 15 as 4-4-4-3 or American Express's 4-6-5, Diners' 14 as
/// 4-6-4, 13-digit Visa as 4-4-4-1 or 4-3-3-3. No 17 or 18 digits are
/// written in groups, so that two digits after a card are not taken in.
fn card_grouping(groups: &[usize]) -> bool {
    matches!(
        groups,
        [4, 4, 4, 4] | [4, 4, 4, 4, 3] | [4, 4, 4, 3] | [4, 6, 5] | [4, 6, 4] | [4, 4, 4, 1] | [4, 3, 3, 3]
    )
}

/// The card numbers in a run of digit groups (`12 4111 1111 1111 1111 2024`):
/// from the left, the first groups that make a card by their own validity
/// (13 to 19 digits, Luhn, issuer prefix and length) written as cards are,
/// one group or a card grouping with one kind of separator; of several from
/// one group, the longest (a 19-digit card whose first 16 digits pass too).
/// Byte ranges within the run.
///
/// A first group that ends another number (`5.16.1`, `742,631`) or a last
/// group that starts one (`823,396`, `12:30`) is no part of a card.
fn card_spans(run: &str, ends_number: bool, starts_number: bool, out: &mut Vec<std::ops::Range<usize>>) {
    // (start, end, separator before) of each group of digits.
    let mut groups: Vec<(usize, usize, u8)> = Vec::new();
    let bytes = run.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let sep = if at == 0 { 0 } else { bytes[at - 1] };
        let end = at + bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        groups.push((at, end, sep));
        at = end + 1;
    }
    if starts_number {
        groups.pop();
    }
    let mut i = usize::from(ends_number);
    while i < groups.len() {
        let mut best = None;
        let (mut count, mut lengths, mut d) = (0, Vec::new(), Vec::new());
        for (j, &(start, end, sep)) in groups.iter().enumerate().skip(i) {
            if j > i && sep != groups[i + 1].2 {
                break;
            }
            count += end - start;
            if count > 19 {
                break;
            }
            lengths.push(end - start);
            d.extend(run[start..end].bytes().map(|b| u32::from(b - b'0')));
            let shaped = j == i || card_grouping(&lengths);
            if count >= 13 && shaped && luhn(&d) && card_issuer(&d) {
                best = Some(j);
            }
        }
        match best {
            Some(j) => {
                out.push(groups[i].0..groups[j].1);
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

/// The lengths of national significant numbers (the digits after the
/// country code) in the numbering plans of common countries, as the plans
/// the countries file with the ITU give them for fixed and mobile lines
/// (rare lengths left out); other codes keep the rule of 7 to 15 digits.
fn national_lengths(code: &str) -> Option<&'static [usize]> {
    Some(match code {
        "1" | "7" | "30" | "52" | "54" | "57" | "63" | "90" | "91" | "92" | "98" => &[10],
        "27" | "31" | "33" | "34" | "40" | "41" | "48" | "51" | "56" | "61" | "66" | "351" | "886" | "966" => &[9],
        "45" | "47" | "65" | "852" | "853" => &[8],
        "20" | "44" | "60" | "81" | "84" => &[9, 10],
        "82" => &[8, 9, 10],
        "32" | "36" | "971" | "972" => &[8, 9],
        "46" => &[7, 8, 9],
        "353" => &[7, 8, 9],
        "39" | "49" => &[9, 10, 11],
        "55" | "86" => &[10, 11],
        "64" => &[8, 9, 10],
        "62" => &[9, 10, 11, 12],
        _ => return None,
    })
}

/// Where an international number (`+44 20 7946 0958`) ends: after the
/// first group at which its national number has a length the country
/// uses, so that a year or a count written after it is not taken in.
/// `None` when the country is not in the table or no group ends at such a
/// length: the number is then judged by its length alone.
fn phone_end(number: &str) -> Option<usize> {
    // (end, digits) of each run of digits.
    let mut runs = Vec::new();
    let mut at = 0;
    while let Some(start) = number[at..].find(|c: char| c.is_ascii_digit()).map(|s| at + s) {
        let end = start + number[start..].bytes().take_while(u8::is_ascii_digit).count();
        runs.push((end, &number[start..end]));
        at = end;
    }
    let (_, first) = *runs.first()?;
    // The country code is the first run, or the start of it when no space follows.
    let (code, mut national) = if first.len() <= 3 {
        (first, 0)
    } else {
        let code = (1..=3).map(|n| &first[..n]).find(|c| national_lengths(c).is_some())?;
        (code, first.len() - code.len())
    };
    let lengths = national_lengths(code)?;
    if national > 0 && lengths.contains(&national) {
        return Some(runs[0].0);
    }
    // `+49 (0)69 ...`: the trunk prefix in brackets is not dialled from abroad.
    let trunk = number.contains("(0)") && runs.get(1).is_some_and(|&(_, digits)| digits == "0");
    for &(end, digits) in &runs[1 + usize::from(trunk)..] {
        national += digits.len();
        if lengths.contains(&national) {
            return Some(end);
        }
    }
    None
}

/// Whether `before` ends with the head of an IBAN (`DE12 `): a country
/// code, two check digits and a space, after a word boundary.
fn after_iban_head(before: &str) -> bool {
    let b = before.as_bytes();
    let n = b.len();
    n >= 5
        && b[n - 1] == b' '
        && b[n - 3..n - 1].iter().all(u8::is_ascii_digit)
        && b[n - 5..n - 3].iter().all(u8::is_ascii_uppercase)
        && (n == 5 || !b[n - 6].is_ascii_alphanumeric())
}

/// Where an IBAN ends in a run that may go on with other groups (`BE68 5390
/// 0754 7034 2024`): at the last space, or the run's end, before which the
/// account number is valid.
fn iban_end(run: &str) -> Option<usize> {
    let mut ends = std::iter::once(run.len()).chain(run.rmatch_indices(' ').map(|(at, _)| at));
    ends.find(|&end| valid_iban(&run[..end]))
}

fn valid_ssn(s: &str) -> bool {
    let (area, rest) = s.split_at(3);
    let (group, serial) = (&rest[1..3], &rest[4..]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Expected IBAN lengths of common countries; others are checked by checksum only.
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "DE" => 22,
        "GB" => 22,
        "FR" => 27,
        "ES" => 24,
        "IT" => 27,
        "NL" => 18,
        "BE" => 16,
        "CH" => 21,
        "AT" => 20,
        "PL" => 28,
        "SE" => 24,
        "IE" => 22,
        "PT" => 25,
        "DK" => 18,
        "NO" => 15,
        "FI" => 18,
        _ => return None,
    })
}

fn valid_iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if iban_length(&compact[..2]).is_some_and(|n| n != compact.len()) || !(15..=34).contains(&compact.len()) {
        return false;
    }
    // ISO 13616: move the first four characters to the end, letters to
    // numbers (A = 10), and the result mod 97 is 1.
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut remainder = 0u32;
    for c in rearranged {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10).expect("a digit")) % 97;
        }
    }
    remainder == 1
}

impl Pii {
    /// The parts of a match of `kind` that are real PII, as byte ranges of
    /// the text: the whole match, a part of it, several, or none.
    fn spans(&self, kind: PiiKind, text: &str, caps: &Captures<'_>, out: &mut Vec<std::ops::Range<usize>>) {
        let m = caps.get(0).expect("a whole match");
        let from = |r: std::ops::Range<usize>| m.start() + r.start..m.start() + r.end;
        // The match begins with the end of another number (`5.16.1`,
        // `742,631`, `2-1`), or ends with the start of one (`823,396`, `12:30`).
        let ends_number = {
            let before = &text.as_bytes()[..m.start()];
            before.len() >= 2
                && matches!(before[before.len() - 1], b'.' | b',' | b':' | b'/' | b'-')
                && before[before.len() - 2].is_ascii_digit()
        };
        let starts_number = {
            let after = &text.as_bytes()[m.end()..];
            after.len() >= 2 && matches!(after[0], b'.' | b',' | b':' | b'/') && after[1].is_ascii_digit()
        };
        match kind {
            // After `DE12 `, the groups are the rest of an account number
            // (one whose check digits failed), not a card.
            PiiKind::CreditCard if after_iban_head(&text[..m.start()]) => {}
            PiiKind::CreditCard => {
                let mut found = Vec::new();
                card_spans(m.as_str(), ends_number, starts_number, &mut found);
                out.extend(found.into_iter().map(from));
            }
            // A North American number that begins another one's end: `1 `
            // after `v5.16.` is the end of a version, not the country code,
            // and `220.130 2319` after `212.191.` is the end of an address.
            PiiKind::Phone if ends_number && caps.name("intl").is_none() => {
                let mut chars = m.as_str().chars();
                let bare_code = chars.next() == Some('1') && chars.next().is_some_and(|c| !c.is_ascii_digit());
                if bare_code && self.valid(kind, caps) {
                    let number = m.as_str().len() - chars.as_str().len();
                    out.push(from(number..m.len()));
                }
            }
            PiiKind::Iban => out.extend(iban_end(m.as_str()).map(|end| from(0..end))),
            PiiKind::Phone if caps.name("intl").is_some() => {
                // `U+0460`, `git+20190510`, `gtk+2.0` and time zones
                // (`+0100`) are no numbers: no country code starts with 0.
                let glued = text[..m.start()].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '+');
                if glued || m.as_str()[1..].starts_with('0') {
                    return;
                }
                match phone_end(m.as_str()) {
                    Some(end) => out.push(from(0..end)),
                    None if self.valid(kind, caps) => out.push(m.range()),
                    None => {}
                }
            }
            _ if self.valid(kind, caps) => out.push(m.range()),
            _ => {}
        }
    }

    /// Whether a match of `kind` is real PII rather than a look-alike.
    fn valid(&self, kind: PiiKind, caps: &Captures<'_>) -> bool {
        let m = caps.get(0).expect("a whole match").as_str();
        match kind {
            PiiKind::Ip => {
                if caps.name("pre").is_some() {
                    return false; // "v1.2.3.4", "version 10.0.0.1": a version, not an address
                }
                if let Ok(v4) = m.parse::<Ipv4Addr>() {
                    let public = !(v4.is_private()
                        || v4.is_loopback()
                        || v4.is_link_local()
                        || v4.is_unspecified()
                        || v4.is_broadcast()
                        || v4.is_documentation()
                        || v4.is_multicast()
                        || v4.octets()[0] == 0
                        || v4.octets()[0] >= 240
                        || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])));
                    return public || !self.config.public_ips_only;
                }
                // IPv6: at least three groups, so that times (12:30:45) and
                // ratios never pass; parsing checks the rest.
                match m.parse::<Ipv6Addr>() {
                    Ok(v6) if m.matches(':').count() >= 3 => {
                        let public = !(v6.is_loopback()
                            || v6.is_unspecified()
                            || v6.is_multicast()
                            || (v6.segments()[0] & 0xfe00) == 0xfc00
                            || (v6.segments()[0] & 0xffc0) == 0xfe80);
                        public || !self.config.public_ips_only
                    }
                    _ => false,
                }
            }
            PiiKind::Ssn => valid_ssn(m),
            PiiKind::Phone => (7..=15).contains(&digits(m).len()),
            PiiKind::CreditCard | PiiKind::Iban => unreachable!("found by their spans"),
            PiiKind::Email | PiiKind::Secret => true,
        }
    }

    fn replacement(&self, kind: PiiKind, value: &str) -> String {
        match self.config.replacement {
            Replacement::Tag => format!("<{}>", kind.tag()),
            Replacement::Fake => {
                let fakes = kind.fakes();
                fakes[(xxh3_64(value.as_bytes()) % fakes.len() as u64) as usize].to_owned()
            }
            Replacement::Hash => {
                let salted = format!("{}{value}", self.config.salt);
                format!("<{}:{:016x}>", kind.tag(), xxh3_64(salted.as_bytes()))
            }
        }
    }

    /// The redacted text and the number of replacements of each kind (in
    /// [`Filter::signal_names`] order).
    pub fn redact<'t>(&self, text: &'t str) -> (std::borrow::Cow<'t, str>, [usize; 7]) {
        let mut counts = [0; 7];
        let mut current = std::borrow::Cow::Borrowed(text);
        for &kind in &self.kinds {
            if !may_hold(kind, current.as_bytes()) {
                continue;
            }
            let re = pattern(kind);
            if !re.is_match(&current) {
                continue;
            }
            let mut spans = Vec::new();
            for caps in re.captures_iter(&current) {
                self.spans(kind, &current, &caps, &mut spans);
            }
            if spans.is_empty() {
                continue;
            }
            let slot = ALL_KINDS.iter().position(|k| *k == kind).expect("a known kind");
            counts[slot] += spans.len();
            let mut replaced = String::with_capacity(current.len());
            let mut last = 0;
            for span in spans {
                replaced.push_str(&current[last..span.start]);
                replaced.push_str(&self.replacement(kind, &current[span.clone()]));
                last = span.end;
            }
            replaced.push_str(&current[last..]);
            current = std::borrow::Cow::Owned(replaced);
        }
        (current, counts)
    }
}

impl Filter for Pii {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let (text, counts) = self.redact(doc.text);
        if let Some(signals) = measure.signals() {
            signals.extend(counts.iter().map(|&c| c as f64));
        }
        if counts.iter().all(|&c| c == 0) {
            Verdict::Keep
        } else {
            Verdict::Rewrite(text.into_owned())
        }
    }

    fn signal_names(&self) -> &'static [&'static str] {
        &["secret", "email", "iban", "credit_card", "ssn", "ip", "phone"]
    }

    fn sums_signals(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        PiiConfig::default().build().unwrap().redact(text).0.into_owned()
    }

    #[test]
    fn the_cheap_test_never_skips_a_match() {
        let texts = [
            "mail a.b@example.com now",
            "no at sign here",
            "8.8.8.8",
            "v1.2.3.4",
            "in 1999. 2000 came",
            "a.b.c",
            "::1",
            "fe80::1%eth0",
            "2001:db8::8a2e:370:7334",
            "Note: see a:b",
            "time 12:30:45",
            "١.٢.٣.٤",
            "ab:cdef:1",
            "12345:6",
            "x@",
            "@y",
        ];
        for text in texts {
            for kind in [PiiKind::Email, PiiKind::Ip] {
                if !may_hold(kind, text.as_bytes()) {
                    assert!(!pattern(kind).is_match(text), "{kind:?} in {text:?}");
                }
            }
        }
        assert!(!may_hold(PiiKind::Email, b"no at sign") && !may_hold(PiiKind::Ip, b"Note: a.b and 1. 2"));
    }

    #[test]
    fn each_kind_is_found_and_tagged() {
        assert_eq!(redact("mail jane.doe+x@mail.example.co.uk now"), "mail <EMAIL> now");
        assert_eq!(redact("from 8.8.8.8 and 2001:4860:4860::8888"), "from <IP_ADDRESS> and <IP_ADDRESS>");
        assert_eq!(redact("call (415) 555-2671 or +44 20 7946 0958"), "call <PHONE> or <PHONE>");
        assert_eq!(redact("card 4111 1111 1111 1111"), "card <CREDIT_CARD>");
        assert_eq!(redact("SSN 123-45-6789"), "SSN <SSN>");
        assert_eq!(redact("IBAN GB82 WEST 1234 5698 7654 32"), "IBAN <IBAN>");
        assert_eq!(redact("key AKIAIOSFODNN7EXAMPLE"), "key <SECRET>");
        assert_eq!(redact("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"), "<SECRET>");
    }

    #[test]
    fn look_alikes_are_left_alone() {
        for text in [
            "version 1.2.3.4 of the library",
            "the router at 192.168.1.1 and localhost 127.0.0.1",
            "ISBN 978-3-16-148410-0 and ISBN 9780306406157",
            "order number 1234567812345678",
            "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "met at 12:30:45 on 2024-05-06",
            "SSN-like 000-12-3456 and 666-12-3456",
            "IBAN-like GB82 WEST 1234 5698 7654 33",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    /// Values found by their own validity when other numbers stand right
    /// beside them, and those numbers left as they are. See: issue 13, PII.
    #[test]
    fn r13_values_beside_other_numbers_keep_their_own_bounds() {
        for (text, expected) in [
            // Cards: a price, a date or a count before; a year, a time, a
            // decimal, a thousands group or a version after.
            ("paid $12 4111 1111 1111 1111 in 2024", "paid $12 <CREDIT_CARD> in 2024"),
            ("on 2023-05-27 4111-1111-1111-1111 12:30", "on 2023-05-27 <CREDIT_CARD> 12:30"),
            ("was 742,631 5500 0000 0000 0004 823,396 then", "was 742,631 <CREDIT_CARD> 823,396 then"),
            ("see 3 4111111111111111 57.2% of it", "see 3 <CREDIT_CARD> 57.2% of it"),
            ("Amex 3782 822463 10005 v1.2", "Amex <CREDIT_CARD> v1.2"),
            ("Diners 3056 930902 5904 42", "Diners <CREDIT_CARD> 42"),
            // 19 digits whose first 16 pass too: the card is the longer.
            ("card 4111 1111 1111 1111 110 ok", "card <CREDIT_CARD> ok"),
            // Phones: the country's number length ends the number.
            ("call +44 20 7946 0958 2024 now", "call <PHONE> 2024 now"),
            ("call +44 20 7946 0958 12:39 now", "call <PHONE> 12:39 now"),
            ("call +49 30 893 0706 11/06/1994", "call <PHONE> 11/06/1994"),
            ("Tel.: +49 (0)69 380 795 200", "Tel.: <PHONE>"),
            ("call 1-415-555-2671 or 1 415 555 2671", "call <PHONE> or <PHONE>"),
            ("an v5.16.1 961.720.9159 63.9%", "an v5.16.1 <PHONE> 63.9%"),
            // IBANs: a group written after one is not taken in.
            ("IBAN BE68 5390 0754 7034 2024 paid", "IBAN <IBAN> 2024 paid"),
            ("IBAN BE68539007547034 1969 paid", "IBAN <IBAN> 1969 paid"),
            // An SSN with a year after it is an SSN, not a card.
            ("SSN 123-45-6789 2024 filed", "SSN <SSN> 2024 filed"),
        ] {
            assert_eq!(redact(text), expected, "{text}");
        }
    }

    /// Numbers that only look like PII once other numbers are beside them.
    /// See: issue 13, PII.
    #[test]
    fn r13_neighbouring_numbers_make_no_new_matches() {
        for text in [
            // The tail of an address, and a time zone, and versions.
            "Use 11.0 as version 212.191.220.130 2319 in it",
            "Mon, 22 May 2023 19:00:10 +0200 2024 done",
            "findutils (4.6.0+git+20190510-2) unstable",
            "U+0460-0463, U+0466-U+0486",
            // An account number whose check digits fail holds a Luhn-valid run.
            "contact DE12 4111 1111 1111 1111 05 for details",
            // Counts, years and amounts in a row.
            "in 1861 1862 1863 1864 and 4 000 000 men and $1,250,000,000",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn replacements_are_deterministic() {
        let fake = PiiConfig { replacement: Replacement::Fake, ..Default::default() }.build().unwrap();
        let a = fake.redact("x 8.8.8.8 y").0;
        assert_eq!(a, fake.redact("x 8.8.8.8 y").0);
        assert!(a.starts_with("x ") && !a.contains("8.8.8.8"));
        let hash =
            PiiConfig { replacement: Replacement::Hash, salt: "s".into(), ..Default::default() }.build().unwrap();
        let (h, counts) = hash.redact("a@b.com and a@b.com");
        let parts: Vec<&str> = h.split(" and ").collect();
        assert_eq!(parts[0], parts[1]);
        assert!(parts[0].starts_with("<EMAIL:"));
        assert_eq!(counts[1], 2);
    }
}
