//! Training n-gram language models with interpolated modified Kneser–Ney
//! smoothing (Chen & Goodman 1998), as KenLM's `lmplz` estimates them, and
//! writing them in ARPA format for the `perplexity` step (or KenLM):
//! adjusted counts (distinct left contexts) for lower orders, three
//! discounts per order from counts of counts, unigrams interpolated with
//! the uniform distribution, written in backoff form (a context's backoff
//! weight is its interpolation weight). All counts are held in memory: this
//! is for reference corpora, not web-scale ones.

use std::collections::HashMap;
use std::fmt::Write;

pub struct KneserNey {
    order: usize,
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    /// Raw counts of n-grams, by order (index n - 1).
    counts: Vec<HashMap<Vec<u32>, u64>>,
}

const BOS: u32 = 0;
const EOS: u32 = 1;
const UNK: u32 = 2;

/// Why a model cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KneserNeyError {
    #[error("order {0} is not between 1 and 6")]
    Order(usize),
    #[error("no sentences to train on")]
    NoSentences,
}

impl KneserNey {
    pub fn new(order: usize) -> Result<KneserNey, KneserNeyError> {
        if !(1..=6).contains(&order) {
            return Err(KneserNeyError::Order(order));
        }
        let words: Vec<String> = ["<s>", "</s>", "<unk>"].map(String::from).to_vec();
        let vocab = words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        Ok(KneserNey { order, vocab, words, counts: vec![HashMap::new(); order] })
    }

    fn id(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.vocab.get(word) {
            return id;
        }
        let id = self.words.len() as u32;
        self.words.push(word.to_owned());
        self.vocab.insert(word.to_owned(), id);
        id
    }

    /// Counts one sentence (its words; `<s>` and `</s>` are added).
    pub fn add_sentence(&mut self, words: &[&str]) {
        if words.is_empty() {
            return;
        }
        let mut ids = vec![BOS];
        ids.extend(words.iter().map(|w| self.id(w)));
        ids.push(EOS);
        for n in 1..=self.order {
            for gram in ids.windows(n) {
                if n == 1 && gram[0] == BOS {
                    continue;
                }
                *self.counts[n - 1].entry(gram.to_vec()).or_default() += 1;
            }
        }
    }

    /// The model as ARPA text.
    pub fn arpa(&self) -> Result<String, KneserNeyError> {
        let order = self.order;
        if self.counts[0].is_empty() {
            return Err(KneserNeyError::NoSentences);
        }
        // Adjusted counts: the highest order keeps raw counts; lower orders
        // count distinct words seen to the left, except n-grams that start
        // a sentence, which nothing can precede.
        let mut adjusted: Vec<HashMap<Vec<u32>, u64>> = vec![HashMap::new(); order];
        adjusted[order - 1] = self.counts[order - 1].clone();
        for n in (1..order).rev() {
            let mut left: HashMap<Vec<u32>, u64> = HashMap::new();
            for gram in self.counts[n].keys() {
                *left.entry(gram[1..].to_vec()).or_default() += 1;
            }
            for (gram, &raw) in &self.counts[n - 1] {
                let a = if gram[0] == BOS { raw } else { left.get(gram).copied().unwrap_or(raw) };
                adjusted[n - 1].insert(gram.clone(), a);
            }
        }
        // Three discounts per order from counts of counts.
        let discounts: Vec<[f64; 3]> = adjusted
            .iter()
            .map(|a| {
                let mut n = [0f64; 5];
                for &c in a.values() {
                    if (1..=4).contains(&c) {
                        n[c as usize] += 1.0;
                    }
                }
                let y = if n[1] + 2.0 * n[2] > 0.0 { n[1] / (n[1] + 2.0 * n[2]) } else { 0.5 };
                let d = |k: usize, default: f64| {
                    if n[k] > 0.0 && n[k + 1] > 0.0 {
                        (k as f64 - (k as f64 + 1.0) * y * n[k + 1] / n[k]).clamp(0.0, k as f64)
                    } else {
                        default
                    }
                };
                [d(1, 0.5), d(2, 1.0), d(3, 1.5)]
            })
            .collect();
        let discount = |n: usize, a: u64| discounts[n - 1][(a.min(3) - 1) as usize];
        // Per context: total adjusted count and interpolation weight.
        let mut gamma: Vec<HashMap<Vec<u32>, f64>> = vec![HashMap::new(); order];
        let mut totals: Vec<HashMap<Vec<u32>, f64>> = vec![HashMap::new(); order];
        for n in 1..=order {
            let mut mass: HashMap<Vec<u32>, f64> = HashMap::new();
            for (gram, &a) in &adjusted[n - 1] {
                let context = gram[..n - 1].to_vec();
                *totals[n - 1].entry(context.clone()).or_default() += a as f64;
                *mass.entry(context).or_default() += discount(n, a);
            }
            for (context, m) in mass {
                gamma[n - 1].insert(context.clone(), m / totals[n - 1][&context]);
            }
        }
        // Probabilities, lowest order first; unigrams are interpolated with
        // the uniform distribution over the vocabulary (<unk> included).
        let vocab_size = (self.words.len() - 1) as f64; // all but <s>
        let mut probs: Vec<HashMap<Vec<u32>, f64>> = vec![HashMap::new(); order];
        let uniform = gamma[0][&Vec::new()] / vocab_size;
        for (gram, &a) in &adjusted[0] {
            probs[0].insert(gram.clone(), (a as f64 - discount(1, a)) / totals[0][&Vec::new()] + uniform);
        }
        probs[0].entry(vec![UNK]).or_insert(uniform);
        for n in 2..=order {
            let (lower, current) = probs.split_at_mut(n - 1);
            for (gram, &a) in &adjusted[n - 1] {
                let context = &gram[..n - 1];
                let p = (a as f64 - discount(n, a)) / totals[n - 1][context]
                    + gamma[n - 1][context] * lower[n - 2][&gram[1..]];
                current[0].insert(gram.clone(), p);
            }
        }
        // ARPA, n-grams sorted for a deterministic file.
        let bos_gram = vec![BOS];
        let mut out = String::from("\\data\\\n");
        for n in 1..=order {
            let extra = usize::from(n == 1); // <s>
            writeln!(out, "ngram {n}={}", probs[n - 1].len() + extra).expect("writing to a String");
        }
        for n in 1..=order {
            write!(out, "\n\\{n}-grams:\n").expect("writing to a String");
            let mut grams: Vec<(&Vec<u32>, f64)> = probs[n - 1].iter().map(|(g, &p)| (g, p)).collect();
            if n == 1 {
                grams.push((&bos_gram, f64::NAN)); // <s> is never predicted
            }
            grams.sort_by(|a, b| {
                a.0.iter().map(|&i| &self.words[i as usize]).cmp(b.0.iter().map(|&i| &self.words[i as usize]))
            });
            for (gram, p) in grams {
                let words: Vec<&str> = gram.iter().map(|&i| self.words[i as usize].as_str()).collect();
                let prob = if p.is_nan() { -99.0 } else { p.log10() };
                write!(out, "{prob:.7}\t{}", words.join(" ")).expect("writing to a String");
                if n < order {
                    if let Some(g) = gamma[n].get(gram) {
                        write!(out, "\t{:.7}", g.log10()).expect("writing to a String");
                    }
                }
                out.push('\n');
            }
        }
        out.push_str("\n\\end\\\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perplexity::Model;

    fn trained(order: usize) -> Model {
        let mut kn = KneserNey::new(order).unwrap();
        for s in ["the whale rose", "the whale dived", "the sea rose", "a whale and the sea", "the ship"] {
            kn.add_sentence(&s.split(' ').collect::<Vec<_>>());
        }
        Model::parse(&kn.arpa().unwrap()).unwrap()
    }

    #[test]
    fn probabilities_sum_to_one_in_every_context() {
        for order in [1, 2, 3] {
            let m = trained(order);
            let vocab = ["the", "whale", "rose", "dived", "sea", "a", "and", "ship", "</s>", "<unk>"];
            for context in [&[][..], &["<s>"], &["the"], &["the", "whale"], &["<s>", "the"], &["ship"], &["zebra"]] {
                let total: f64 = vocab.iter().map(|w| 10f64.powf(m.conditional(context, w))).sum();
                assert!((total - 1.0).abs() < 1e-4, "order {order}, context {context:?}: {total}");
            }
        }
    }

    #[test]
    fn seen_continuations_beat_unseen_ones() {
        let m = trained(3);
        assert!(m.conditional(&["the"], "whale") > m.conditional(&["the"], "dived"));
        assert!(m.score(&["the", "whale", "rose"]) > m.score(&["rose", "whale", "the"]));
    }
}
