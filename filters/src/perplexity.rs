//! Perplexity under an n-gram language model in ARPA format (from KenLM's
//! `lmplz` or any other tool), as CCNet scores pages: each non-empty line is
//! scored with sentence boundaries, log-probabilities and lengths (words
//! plus the end of sentence) summed over the page, perplexity
//! `10^(-sum / length)`. Probabilities back off as KenLM computes them. Sets
//! `perplexity` (and `perplexity_bucket`, CCNet's head/middle/tail, when
//! bucket cut-offs are given) on every document; drops outside the bounds.
//! The engine reads the model file; this crate only parses its text.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{check_threshold, ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PerplexityConfig {
    /// The model, as ARPA text (the engine fills it from `path`).
    pub model: String,
    /// Lowercase the text before scoring (match how the model was trained).
    pub lowercase: bool,
    /// Higher perplexity drops: `perplexity_too_high`.
    pub max_perplexity: Option<f64>,
    /// Lower perplexity drops: `perplexity_too_low` (templates, repeated text).
    pub min_perplexity: Option<f64>,
    /// CCNet buckets: `[head, middle]` cut-offs (percentiles of the reference
    /// data's perplexities); `perplexity_bucket` is head below the first,
    /// middle below the second, tail above.
    pub buckets: Option<[f64; 2]>,
}

impl FilterConfig for PerplexityConfig {
    type Filter = Perplexity;

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold("max_perplexity", self.max_perplexity, 0.0..=f64::INFINITY)?;
        check_threshold("min_perplexity", self.min_perplexity, 0.0..=f64::INFINITY)?;
        if let Some([head, middle]) = self.buckets {
            if head > middle {
                return Err(format!("buckets [{head}, {middle}] are not in increasing order").into());
            }
        }
        Ok(())
    }

    fn build(self) -> Result<Perplexity, ConfigError> {
        let model = Model::parse(&self.model)?;
        Ok(Perplexity { config: PerplexityConfig { model: String::new(), ..self }, model })
    }
}

/// An n-gram model: for each n-gram of word ids, its log10 probability and
/// backoff weight.
pub struct Model {
    order: usize,
    vocab: HashMap<String, u32>,
    ngrams: HashMap<Vec<u32>, (f32, f32)>,
    unk: u32,
    bos: u32,
    eos: u32,
}

impl Model {
    /// Parses ARPA text; errors name the line.
    pub fn parse(text: &str) -> Result<Model, ConfigError> {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut ngrams = HashMap::new();
        let mut order = 0;
        let mut section = 0usize;
        let mut in_data = false;
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "\\data\\" {
                in_data = true;
                continue;
            }
            if line == "\\end\\" {
                break;
            }
            if let Some(n) = line.strip_prefix('\\').and_then(|l| l.strip_suffix("-grams:")) {
                section = n.parse().map_err(|_| format!("ARPA line {}: bad section {line:?}", no + 1))?;
                order = order.max(section);
                in_data = false;
                continue;
            }
            if in_data || section == 0 {
                continue; // `ngram N=count` lines and anything before \data\
            }
            let mut parts = line.split_whitespace();
            let prob: f32 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("ARPA line {}: no probability", no + 1))?;
            let words: Vec<&str> = parts.by_ref().take(section).collect();
            if words.len() != section {
                return Err(format!("ARPA line {}: a {section}-gram needs {section} words", no + 1).into());
            }
            let backoff: f32 = parts
                .next()
                .map_or(Ok(0.0), |b| b.parse().map_err(|_| format!("ARPA line {}: bad backoff", no + 1)))?;
            let ids: Vec<u32> = words
                .iter()
                .map(|w| {
                    let next = vocab.len() as u32;
                    *vocab.entry((*w).to_owned()).or_insert(next)
                })
                .collect();
            ngrams.insert(ids, (prob, backoff));
        }
        if order == 0 || vocab.is_empty() {
            return Err("not an ARPA model: no n-grams".into());
        }
        let id = |w: &str| vocab.get(w).copied();
        let (bos, eos) = (id("<s>").ok_or("the model has no <s>")?, id("</s>").ok_or("the model has no </s>")?);
        let unk = match id("<unk>") {
            Some(u) => u,
            None => {
                // KenLM gives a model without <unk> a probability of -100 for it.
                let u = vocab.len() as u32;
                vocab.insert("<unk>".into(), u);
                ngrams.insert(vec![u], (-100.0, 0.0));
                u
            }
        };
        Ok(Model { order, vocab, ngrams, unk, bos, eos })
    }

    /// log10 p(word | context), backing off as KenLM does (in `f32`, as
    /// KenLM computes it).
    fn log_prob(&self, context: &[u32], word: u32) -> f32 {
        let mut backoff = 0.0f32;
        for start in 0..=context.len() {
            let mut key: Vec<u32> = context[start..].to_vec();
            key.push(word);
            if let Some(&(prob, _)) = self.ngrams.get(&key) {
                return backoff + prob;
            }
            if let Some(&(_, b)) = self.ngrams.get(&context[start..]) {
                backoff += b;
            }
        }
        backoff + self.ngrams[&vec![self.unk]].0
    }

    /// log10 p(word | context words): for checks of a model.
    pub fn conditional(&self, context: &[&str], word: &str) -> f64 {
        let id = |w: &str| self.vocab.get(w).copied().unwrap_or(self.unk);
        let context: Vec<u32> = context.iter().map(|w| id(w)).collect();
        let keep = context.len().min(self.order - 1);
        f64::from(self.log_prob(&context[context.len() - keep..], id(word)))
    }

    /// KenLM's `model.score(sentence, bos=True, eos=True)`: the log10
    /// probability of the words and the end of sentence, summed in `f32`
    /// as KenLM sums it, so that scores agree to its last digit.
    pub fn score(&self, words: &[&str]) -> f64 {
        let mut history = vec![self.bos];
        let mut total = 0.0f32;
        for w in words.iter().map(|w| self.vocab.get(*w).copied().unwrap_or(self.unk)).chain([self.eos]) {
            let context_len = history.len().min(self.order - 1);
            total += self.log_prob(&history[history.len() - context_len..], w);
            history.push(w);
        }
        f64::from(total)
    }
}

pub struct Perplexity {
    config: PerplexityConfig,
    model: Model,
}

impl Perplexity {
    /// The page's perplexity; `None` when it has no words.
    pub fn perplexity(&self, text: &str) -> Option<f64> {
        let (mut log_score, mut length) = (0.0, 0usize);
        for line in text.lines() {
            let line = if self.config.lowercase { line.to_lowercase() } else { line.to_owned() };
            // KenLM splits with Python's `str.split`, which also splits on 0x1C..0x1F.
            let words: Vec<&str> = line.split(crate::text::is_space).filter(|w| !w.is_empty()).collect();
            if words.is_empty() {
                continue;
            }
            log_score += self.model.score(&words);
            length += words.len() + 1;
        }
        (length > 0).then(|| 10f64.powf(-log_score / length as f64))
    }

    fn judge(&self, perplexity: Option<f64>) -> Verdict {
        let Some(p) = perplexity else { return Verdict::Keep };
        if self.config.max_perplexity.is_some_and(|max| p > max) {
            return Verdict::drop("perplexity_too_high");
        }
        if self.config.min_perplexity.is_some_and(|min| p < min) {
            return Verdict::drop("perplexity_too_low");
        }
        Verdict::Keep
    }

    fn bucket(&self, p: f64) -> Option<&'static str> {
        let [head, middle] = self.config.buckets?;
        Some(if p < head {
            "head"
        } else if p < middle {
            "middle"
        } else {
            "tail"
        })
    }
}

impl Filter for Perplexity {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let p = self.perplexity(doc.text);
        if let Measure::Metadata(values) = measure {
            values.push(p.map_or(Value::Null, Value::from));
            if self.config.buckets.is_some() {
                values.push(p.and_then(|p| self.bucket(p)).map_or(Value::Null, Value::from));
            }
        }
        self.judge(p)
    }

    fn metadata_fields(&self) -> Vec<(String, bool)> {
        let mut fields = vec![("perplexity".to_owned(), true)];
        if self.config.buckets.is_some() {
            fields.push(("perplexity_bucket".to_owned(), false));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bigram model small enough to check by hand.
    const ARPA: &str = "\\data\\\nngram 1=5\nngram 2=3\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\t-0.3\n-0.5\t</s>\n-0.7\tthe\t-0.2\n-0.9\twhale\t-0.1\n\n\\2-grams:\n-0.2\t<s> the\n-0.4\tthe whale\n-0.3\twhale </s>\n\n\\end\\\n";

    #[test]
    fn scores_back_off_like_kenlm() {
        let m = Model::parse(ARPA).unwrap();
        // <s> the (bigram) + the whale (bigram) + whale </s> (bigram)
        assert!((m.score(&["the", "whale"]) - (-0.2 - 0.4 - 0.3)).abs() < 1e-6);
        // <s> whale: backoff(<s>) + p(whale); whale the: backoff(whale) + p(the); the </s>: backoff(the) + p(</s>)
        let expected = (-0.3 - 0.9) + (-0.1 - 0.7) + (-0.2 - 0.5);
        assert!((m.score(&["whale", "the"]) - expected).abs() < 1e-6);
        // an unknown word: backoff(<s>) + p(<unk>), then p(</s>) after <unk> (no backoff)
        assert!((m.score(&["ship"]) - ((-0.3 - 1.0) + (-0.5))).abs() < 1e-6);
    }

    #[test]
    fn pages_are_scored_line_by_line_and_bounded() {
        let config = PerplexityConfig {
            model: ARPA.into(),
            max_perplexity: Some(5.0),
            buckets: Some([1.5, 10.0]),
            ..Default::default()
        };
        config.validate().unwrap();
        let f = config.build().unwrap();
        let p = f.perplexity("the whale\n\nthe whale").unwrap();
        assert!((p - 10f64.powf(0.9 * 2.0 / 6.0)).abs() < 1e-6, "{p}");
        // Words are split as Python's `str.split` splits them, information
        // separators included (issue 13, web text).
        assert_eq!(f.perplexity("the\u{1c}whale\n\nthe\u{1f} whale"), Some(p));
        assert_eq!(f.filter(&Document::text_only("the whale"), Measure::Verdict), Verdict::Keep);
        assert_eq!(f.filter(&Document::text_only("whale the"), Measure::Verdict), Verdict::drop("perplexity_too_high"));
        let mut values = Vec::new();
        f.filter(&Document::text_only("the whale"), Measure::Metadata(&mut values));
        assert_eq!(values[1], "middle");
        // Validation reads no model; building does, and names the fault.
        let nonsense = PerplexityConfig { model: "nonsense".into(), ..Default::default() };
        assert!(nonsense.validate().is_ok());
        assert_eq!(nonsense.build().err().unwrap().to_string(), "not an ARPA model: no n-grams");
    }
}
