//! A URL's domain, split as tldextract splits it: subdomain, domain and
//! public suffix, by the ICANN section of the Public Suffix List.
//!
//! datatrove's `URLFilter` blocks domains with tldextract's default
//! extractor, so this follows tldextract 5.4 step for step: its lenient
//! host parsing (userinfo, ports, brackets, trailing root dots, the three
//! Unicode full stops), its suffix matching on lowercased labels with
//! `xn--` labels decoded from punycode (wildcards and their exceptions
//! included), its IPv4 and IPv6 shortcuts, and the original case of the
//! labels in the result. The list is tldextract's own bundled snapshot
//! (`data/public_suffix_list.dat`, MPL-2.0, from publicsuffix.org), so the
//! same URL splits the same way offline, as datatrove runs without network.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The list as a trie of labels from the right.
#[derive(Default)]
struct Node {
    children: HashMap<String, Node>,
    end: bool,
}

const LIST: &str = include_str!("../data/public_suffix_list.dat");

fn icann() -> &'static Node {
    static TRIE: OnceLock<Node> = OnceLock::new();
    TRIE.get_or_init(|| {
        // tldextract: the text before the private section, each line that
        // starts with `[.*!]*\w` taken up to its first whitespace.
        let public = LIST.split("// ===BEGIN PRIVATE DOMAINS===").next().unwrap_or_default();
        let rule = regex::Regex::new(r"(?m)^[.*!]*\w\S*").expect("a valid pattern");
        let mut root = Node::default();
        for m in rule.find_iter(public) {
            let mut node = &mut root;
            for label in m.as_str().split('.').rev() {
                node = node.children.entry(label.to_owned()).or_default();
            }
            node.end = true;
        }
        root
    })
}

/// A URL's host in three parts, each in the URL's own case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    pub subdomain: String,
    pub domain: String,
    pub suffix: String,
}

impl Extracted {
    /// `domain.suffix`, or empty without either (tldextract's `registered_domain`).
    pub fn registered_domain(&self) -> String {
        if self.suffix.is_empty() || self.domain.is_empty() {
            return String::new();
        }
        format!("{}.{}", self.domain, self.suffix)
    }

    /// The whole host when it has a domain under a suffix, else empty
    /// (tldextract's `fqdn`).
    pub fn fqdn(&self) -> String {
        if self.suffix.is_empty() || self.domain.is_empty() {
            return String::new();
        }
        [&self.subdomain, &self.domain, &self.suffix]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The parts of `url`'s host.
pub fn extract(url: &str) -> Extracted {
    let netloc = lenient_netloc(url).replace(['\u{3002}', '\u{ff0e}', '\u{ff61}'], ".");
    let whole = |domain: &str| Extracted { domain: domain.to_owned(), ..Extracted::default() };
    let bracketed = netloc.len() >= 4 && netloc.starts_with('[') && netloc.ends_with(']');
    if bracketed && netloc[1..netloc.len() - 1].parse::<std::net::Ipv6Addr>().is_ok() {
        return whole(&netloc);
    }
    let labels: Vec<&str> = netloc.split('.').collect();
    match suffix_index(&labels) {
        None if labels.len() == 4 && looks_like_ipv4(&netloc) => whole(&netloc),
        None => Extracted {
            subdomain: labels[..labels.len() - 1].join("."),
            domain: labels[labels.len() - 1].to_owned(),
            suffix: String::new(),
        },
        Some(i) => Extracted {
            subdomain: if i >= 2 { labels[..i - 1].join(".") } else { String::new() },
            domain: if i > 0 { labels[i - 1].to_owned() } else { String::new() },
            suffix: labels[i..].join("."),
        },
    }
}

/// Where the public suffix starts among `labels`, if it has one.
fn suffix_index(labels: &[&str]) -> Option<usize> {
    let mut node = icann();
    let (mut suffix_at, mut at) = (labels.len(), labels.len());
    for label in labels.iter().rev() {
        let decoded = decode_punycode(label);
        if let Some(next) = node.children.get(&decoded) {
            at -= 1;
            node = next;
            if node.end {
                suffix_at = at;
            }
            continue;
        }
        if node.children.contains_key("*") {
            let exception = node.children.contains_key(&format!("!{decoded}"));
            return Some(if exception { at } else { at.saturating_sub(1) });
        }
        break;
    }
    (suffix_at != labels.len()).then_some(suffix_at)
}

/// The host of a URL-like string, as tldextract's `lenient_netloc` takes it.
fn lenient_netloc(url: &str) -> String {
    let schemeless = schemeless_url(url);
    let authority = schemeless.split('/').next().unwrap_or_default();
    let authority = authority.split('?').next().unwrap_or_default();
    let authority = authority.split('#').next().unwrap_or_default();
    let after_userinfo = authority.rsplit('@').next().unwrap_or_default();
    if after_userinfo.starts_with('[') {
        if let Some(end) = after_userinfo.find(']') {
            return format!("{}]", &after_userinfo[..end]);
        }
    }
    let hostname = after_userinfo.split(':').next().unwrap_or_default().trim();
    hostname.trim_end_matches(['.', '\u{3002}', '\u{ff0e}', '\u{ff61}']).to_owned()
}

fn schemeless_url(url: &str) -> &str {
    let Some(at) = url.find("//") else { return url };
    if at == 0 {
        return &url[2..];
    }
    let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    if at < 2 || url.as_bytes()[at - 1] != b':' || !url[..at - 1].chars().all(scheme_char) {
        return url;
    }
    &url[at + 2..]
}

fn looks_like_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && !(p.len() > 1 && p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// A label lowercased, and decoded when it is punycode (`xn--`); a label
/// that does not decode stays as it is, lowercased.
fn decode_punycode(label: &str) -> String {
    let lowered = label.to_lowercase();
    match lowered.strip_prefix("xn--").and_then(punycode_decode) {
        Some(decoded) => decoded,
        None => lowered,
    }
}

/// RFC 3492's decoder.
fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    let (mut output, rest): (Vec<char>, &str) = match input.rfind('-') {
        Some(at) => (input[..at].chars().collect(), &input[at + 1..]),
        None => (Vec::new(), input),
    };
    if !output.iter().all(char::is_ascii) {
        return None;
    }
    let (mut n, mut i, mut bias) = (128u32, 0u32, 72u32);
    let mut digits = rest.bytes().peekable();
    while digits.peek().is_some() {
        let old_i = i;
        let mut w = 1u32;
        let mut k = BASE;
        loop {
            let digit = match digits.next()? {
                b @ b'a'..=b'z' => u32::from(b - b'a'),
                b @ b'0'..=b'9' => u32::from(b - b'0') + 26,
                _ => return None,
            };
            i = i.checked_add(digit.checked_mul(w)?)?;
            let t = if k <= bias {
                1
            } else if k >= bias + 26 {
                26
            } else {
                k - bias
            };
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = output.len() as u32 + 1;
        let mut delta = if old_i == 0 { (i - old_i) / 700 } else { (i - old_i) / 2 };
        delta += delta / len;
        let mut k = 0;
        while delta > ((BASE - 1) * 26) / 2 {
            delta /= BASE - 1;
            k += BASE;
        }
        bias = k + (BASE * delta) / (delta + 38);
        n = n.checked_add(i / len)?;
        i %= len;
        output.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(output.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String) {
        let e = extract(url);
        (e.subdomain, e.domain, e.suffix)
    }

    #[test]
    fn hosts_split_as_tldextract_splits_them() {
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(parts("https://www.Example.COM/a"), s("www", "Example", "COM"));
        assert_eq!(parts("http://192.168.1.1/x"), s("", "192.168.1.1", ""));
        assert_eq!(parts("https://foo.bar.co.uk/"), s("foo", "bar", "co.uk"));
        assert_eq!(parts("https://localhost:8080/"), s("", "localhost", ""));
        // Private suffixes (github.io, blogspot.com) are not public: datatrove's extractor leaves them out.
        assert_eq!(parts("https://user:pw@sub.example.github.io/x?y"), s("sub.example", "github", "io"));
        assert_eq!(parts("http://xn--bcher-kva.example/"), s("xn--bcher-kva", "example", ""));
        assert_eq!(parts("https://bücher.de/"), s("", "bücher", "de"));
        assert_eq!(extract("http://forums.bbc.co.uk").registered_domain(), "bbc.co.uk");
        assert_eq!(extract("http://localhost:8080").fqdn(), "");
        assert_eq!(punycode_decode("bcher-kva").as_deref(), Some("bücher"));
        assert_eq!(punycode_decode("mgbh0fb").as_deref(), Some("مثال"));
        assert_eq!(punycode_decode("wgbh1c").as_deref(), Some("مصر"));
    }
}

#[cfg(test)]
mod against_tldextract {
    use super::*;

    /// fixtures/urls/tldextract.jsonl: URLs of every kind, with what
    /// tldextract 5.4 (offline, its bundled list) made of each; written by
    /// scripts/parity/url_filter_parity.py's URL generator.
    #[test]
    fn every_fixture_url_splits_as_tldextract_split_it() {
        let root: std::path::PathBuf =
            std::env::var_os("CARGO_MANIFEST_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let text = std::fs::read_to_string(root.join("../fixtures/urls/tldextract.jsonl")).unwrap();
        let mut n = 0;
        for line in text.lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let e = extract(r["url"].as_str().unwrap());
            let got = [e.subdomain.clone(), e.domain.clone(), e.suffix.clone(), e.registered_domain(), e.fqdn()];
            let want = ["subdomain", "domain", "suffix", "registered_domain", "fqdn"]
                .map(|k| r[k].as_str().unwrap().to_owned());
            assert_eq!(got, want, "{}", r["url"]);
            n += 1;
        }
        assert_eq!(n, 600);
    }
}
