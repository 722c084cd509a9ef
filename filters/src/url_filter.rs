//! datatrove's `URLFilter`: drops a document by its URL, with datatrove's
//! rules, in its order, with its reasons:
//!
//! 1. `domain`: the URL's registered domain (tldextract's) is block-listed;
//! 2. `subdomain`: its full host is;
//! 3. `url`: the URL itself is;
//! 4. `hard_blacklisted`: a banned word is one of the URL's words (its
//!    pieces between characters other than ASCII letters and digits, case
//!    kept, as `re.split` leaves them);
//! 5. `soft_blacklisted`: `soft_word_threshold` or more soft-banned words
//!    are among them;
//! 6. `blacklisted_subword`: a banned subword occurs in the URL stripped to
//!    its ASCII letters and digits, lowercased.
//!
//! Lists come as datatrove reads its list files: each line (newline
//! included) not starting with `#`; words and subwords stripped to their
//! lowercased ASCII letters and digits, domains and URLs stripped of
//! surrounding whitespace. (So an empty line in a list adds the empty
//! string, as it does in datatrove: an empty word matches URLs that start
//! or end with punctuation, an empty domain matches hosts without a
//! suffix.) The engine reads the files; datatrove's own bundled lists are
//! not shipped, only what the pipeline names.

use std::collections::HashSet;

use aho_corasick::AhoCorasick;
use serde::Deserialize;

use crate::public_suffix;
use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UrlFilterConfig {
    /// The metadata field holding the URL.
    #[serde(default = "default_url_field")]
    pub url_field: String,
    #[serde(default = "default_soft_word_threshold")]
    pub soft_word_threshold: usize,
    /// Lines of a domain block list (registered domains or full hosts).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Lines of a URL block list.
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub banned_words: Vec<String>,
    #[serde(default)]
    pub banned_subwords: Vec<String>,
    #[serde(default)]
    pub soft_banned_words: Vec<String>,
}

fn default_url_field() -> String {
    "url".into()
}
fn default_soft_word_threshold() -> usize {
    2
}

/// datatrove's `normalize`: ASCII letters and digits only, lowercased.
fn normalize(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// datatrove's `parse_list` over lines as Python reads a file.
fn parse_list(lines: &[String], do_normalize: bool) -> HashSet<String> {
    lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| if do_normalize { normalize(l) } else { l.trim().to_owned() })
        .collect()
}

impl FilterConfig for UrlFilterConfig {
    type Filter = UrlFilter;

    fn build(self) -> Result<UrlFilter, ConfigError> {
        let lists = [&self.domains, &self.urls, &self.banned_words, &self.banned_subwords, &self.soft_banned_words];
        if lists.iter().all(|l| l.is_empty()) {
            return Err("give at least one list (domains, urls, banned_words, banned_subwords, soft_banned_words \
                        or their _path files): with none the filter keeps everything"
                .into());
        }
        let subwords: Vec<String> =
            parse_list(&self.banned_subwords, true).into_iter().filter(|w| !w.is_empty()).collect();
        let automaton = AhoCorasick::new(&subwords)
            .map_err(|e| ConfigError(format!("the banned subwords do not build a matcher: {e}")))?;
        Ok(UrlFilter {
            domains: parse_list(&self.domains, false),
            urls: parse_list(&self.urls, false),
            banned_words: parse_list(&self.banned_words, true),
            soft_banned_words: parse_list(&self.soft_banned_words, true),
            subwords: (!subwords.is_empty()).then_some(automaton),
            separators: regex::Regex::new("[^a-zA-Z0-9]+").expect("a valid pattern"),
            config: self,
        })
    }
}

pub struct UrlFilter {
    config: UrlFilterConfig,
    domains: HashSet<String>,
    urls: HashSet<String>,
    banned_words: HashSet<String>,
    soft_banned_words: HashSet<String>,
    subwords: Option<AhoCorasick>,
    separators: regex::Regex,
}

impl Filter for UrlFilter {
    fn filter(&self, doc: &Document<'_>, _measure: Measure<'_>) -> Verdict {
        // datatrove fails on a document without a URL; curate drops it, by name.
        let Some(url) = doc.metadata.field(&self.config.url_field).and_then(|v| v.as_str().map(str::to_owned)) else {
            return Verdict::drop("no_url");
        };
        if url.is_empty() {
            return Verdict::drop("no_url");
        }
        let host = public_suffix::extract(&url);
        if self.domains.contains(&host.registered_domain()) {
            return Verdict::drop("domain");
        }
        if self.domains.contains(&host.fqdn()) {
            return Verdict::drop("subdomain");
        }
        if self.urls.contains(&url) {
            return Verdict::drop("url");
        }
        // Runs of separators split once, as Python's re.split does with the `+`.
        let words: HashSet<&str> = self.separators.split(&url).collect();
        if self.banned_words.iter().any(|w| words.contains(w.as_str())) {
            return Verdict::drop("hard_blacklisted");
        }
        let soft = self.soft_banned_words.iter().filter(|w| words.contains(w.as_str())).count();
        if soft >= self.config.soft_word_threshold {
            return Verdict::drop("soft_blacklisted");
        }
        if self.subwords.as_ref().is_some_and(|a| a.is_match(&normalize(&url))) {
            return Verdict::drop("blacklisted_subword");
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    struct Url(&'static str);
    impl Metadata for Url {
        fn field(&self, name: &str) -> Option<serde_json::Value> {
            (name == "url").then(|| serde_json::Value::from(self.0))
        }
    }

    fn lines(text: &str) -> Vec<String> {
        text.split_inclusive('\n').map(String::from).collect()
    }

    fn verdict(f: &UrlFilter, url: &'static str) -> Verdict {
        let m = Url(url);
        f.filter(&Document { id: "d", text: "", metadata: &m, words: None }, Measure::Verdict)
    }

    #[test]
    fn rules_fire_in_datatroves_order_with_its_reasons() {
        let f = UrlFilterConfig {
            url_field: "url".into(),
            soft_word_threshold: 2,
            domains: lines("# comment\nbad.co.uk\nwww.spam.com\n"),
            urls: lines("https://ok.org/blocked\n"),
            banned_words: lines("Casino\n"),
            banned_subwords: lines("xxx\n"),
            soft_banned_words: lines("free\nwin\n"),
        }
        .build()
        .unwrap();
        assert_eq!(verdict(&f, "https://shop.bad.co.uk/x"), Verdict::drop("domain"));
        assert_eq!(verdict(&f, "http://www.spam.com/"), Verdict::drop("subdomain"));
        assert_eq!(verdict(&f, "http://spam.com/"), Verdict::Keep);
        assert_eq!(verdict(&f, "https://ok.org/blocked"), Verdict::drop("url"));
        assert_eq!(verdict(&f, "https://ok.org/casino/1"), Verdict::drop("hard_blacklisted"));
        // Words keep their case, as re.split leaves them: the list's "casino" misses "Casino".
        assert_eq!(verdict(&f, "https://ok.org/Casino/1"), Verdict::Keep);
        assert_eq!(verdict(&f, "https://ok.org/free-win"), Verdict::drop("soft_blacklisted"));
        assert_eq!(verdict(&f, "https://ok.org/free"), Verdict::Keep);
        assert_eq!(verdict(&f, "https://ok.org/aXXXb"), Verdict::drop("blacklisted_subword"));
        let m = crate::NoMetadata;
        let none = f.filter(&Document { id: "d", text: "", metadata: &m, words: None }, Measure::Verdict);
        assert_eq!(none, Verdict::drop("no_url"));
    }

    #[test]
    fn an_empty_line_behaves_as_in_datatrove() {
        let f = UrlFilterConfig {
            url_field: "url".into(),
            soft_word_threshold: 2,
            domains: Vec::new(),
            urls: Vec::new(),
            banned_words: lines("porn\n\n"),
            banned_subwords: Vec::new(),
            soft_banned_words: Vec::new(),
        }
        .build()
        .unwrap();
        // The empty word is one of the words of a URL ending with "/".
        assert_eq!(verdict(&f, "https://ok.org/"), Verdict::drop("hard_blacklisted"));
        assert_eq!(verdict(&f, "https://ok.org/a"), Verdict::Keep);
    }
}
