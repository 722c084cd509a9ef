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
        // North American numbers with separators or brackets, and
        // international numbers written with a leading +.
        PiiKind::Phone => regex(
            &PHONE,
            r"(?:\+1[\s.-]?)?(?:\(\d{3}\)\s?|(?-u:\b)\d{3}[\s.-])\d{3}[\s.-]\d{4}(?-u:\b)|\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?-u:\b)",
        ),
        PiiKind::CreditCard => regex(&CARD, r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)"),
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
        Some(3) => matches!(prefix(2), 34 | 37) && len == 15 || (3528..=3589).contains(&prefix(4)) && len == 16,
        Some(6) => {
            (prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3))) && (16..=19).contains(&len)
        }
        _ => false,
    }
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
            PiiKind::CreditCard => {
                let d = digits(m);
                (13..=19).contains(&d.len()) && luhn(&d) && card_issuer(&d)
            }
            PiiKind::Ssn => valid_ssn(m),
            PiiKind::Iban => valid_iban(m),
            PiiKind::Phone => (7..=15).contains(&digits(m).len()),
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
            let slot = ALL_KINDS.iter().position(|k| *k == kind).expect("a known kind");
            let replaced = re
                .replace_all(&current, |caps: &Captures<'_>| {
                    let whole = caps.get(0).expect("a whole match").as_str();
                    if self.valid(kind, caps) {
                        counts[slot] += 1;
                        self.replacement(kind, whole)
                    } else {
                        whole.to_owned()
                    }
                })
                .into_owned();
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
