//! A supervised fastText model (`.bin`, or quantized `.ftz`), predicting
//! exactly as fastText's `predict` does: the same tokenisation, hashed word
//! and character n-grams, probabilities, and order of labels, ties included.
//!
//! Model files, the dictionary and quantized models are the `fasttext`
//! crate's (a port of the C++ code); three things are done here because
//! the crate does them otherwise:
//! - Tokens: the text goes through the dictionary's stream reader with a
//!   final newline, as the Python binding's `predict` sends it, so the end of
//!   line token `</s>` takes part in the word n-grams and an empty text is
//!   predicted from `</s>` alone (the crate's `predict` adds `</s>` after the
//!   n-grams and returns nothing for empty text).
//! - Arithmetic of full-precision models: the hidden vector, the dot
//!   products, the softmax, the sigmoid table and `log(p + 1e-5)` in the
//!   C++ code's order and precision, one float operation at a time. The
//!   crate's SIMD sums differ in the last bits, which moves a one-vs-all
//!   score across a step of fastText's 512-entry sigmoid table (a change
//!   of 1e-3) and reorders near-ties.
//! - Order: fastText keeps the best k in a `std::push_heap` / `pop_heap`
//!   min-heap and sorts it with `sort_heap`, none of them stable; labels of
//!   equal probability (common with one-vs-all losses, and among the
//!   smallest probabilities) come out in the order libstdc++'s heap leaves
//!   them, which [`find_k_best`] reproduces step for step.
//!
//! Texts must not contain `\n`: fastText predicts one line, and callers
//! replace newlines first, as datatrove does.

use std::collections::HashMap;
use std::sync::OnceLock;

use fasttext::args::LossName;

use crate::ConfigError;

/// Loaded once per step and shared by every thread.
pub struct FastTextModel {
    model: fasttext::FastText,
    /// Labels as the model names them (`__label__en`), by label index.
    labels: Vec<String>,
    index: HashMap<String, usize>,
    /// The label prefix the model was trained with (`__label__`).
    prefix: String,
}

impl std::fmt::Debug for FastTextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastTextModel").field("labels", &self.labels.len()).finish_non_exhaustive()
    }
}

/// One label and its probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub label: usize,
    pub prob: f32,
}

impl FastTextModel {
    /// Reads a model file's bytes; refuses unsupervised (word vector) models,
    /// which have no labels to predict.
    pub fn from_bytes(bytes: &[u8]) -> Result<FastTextModel, ConfigError> {
        let model =
            fasttext::FastText::load(&mut &bytes[..]).map_err(|e| ConfigError(format!("not a fastText model: {e}")))?;
        let (labels, _) = model.get_labels();
        if labels.is_empty() {
            return Err("a fastText model without labels (word vectors, not a classifier)".into());
        }
        let index = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
        let prefix = model.args().label.clone();
        Ok(FastTextModel { model, labels, index, prefix })
    }

    /// Every label, with its prefix (`__label__en`), by index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Label `i` without the model's label prefix (`en`).
    pub fn label_name(&self, i: usize) -> &str {
        let label = &self.labels[i];
        label.strip_prefix(self.prefix.as_str()).unwrap_or(label)
    }

    /// The index of a label given with or without its prefix.
    pub fn label_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).or_else(|| self.index.get(&format!("{}{name}", self.prefix))).copied()
    }

    /// The `k` most probable labels of one line of text (`k` is capped at
    /// the number of labels; `usize::MAX` is every label) whose
    /// probability is at least `threshold`, most probable first, as
    /// `model.predict(line, k, threshold)` answers.
    pub fn predict(&self, line: &str, k: usize, threshold: f32) -> Vec<Prediction> {
        let items = self.log_probs(line, threshold);
        let k = k.min(self.labels.len());
        let mut sorted = items.clone();
        sorted.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // Without equal scores every selection and sort agrees with
        // fastText's heap; with them, the heap decides where ties land.
        let best = if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            find_k_best(&items, k)
        } else {
            sorted.truncate(k);
            sorted
        };
        best.into_iter().map(|(log_prob, label)| Prediction { label, prob: log_prob.exp() }).collect()
    }

    /// Every label's probability as `predict` reports it (0 for a label
    /// below `threshold`), by label index, or `None` when fastText predicts
    /// nothing (a line without tokens the model knows): what a caller
    /// that wants scores and not an order needs, without the sort.
    pub fn probabilities(&self, line: &str, threshold: f32) -> Option<Vec<f32>> {
        let items = self.log_probs(line, threshold);
        if items.is_empty() {
            return None;
        }
        let mut probs = vec![0.0; self.labels.len()];
        for (log_prob, label) in items {
            probs[label] = log_prob.exp();
        }
        Some(probs)
    }

    /// `(log-probability as fastText ranks it, label)` for every label at
    /// or above the threshold, in the order fastText visits labels.
    fn log_probs(&self, line: &str, threshold: f32) -> Vec<(f32, usize)> {
        debug_assert!(!line.contains('\n'), "fastText predicts one line");
        let mut input = Vec::with_capacity(line.len() + 1);
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        let (mut words, mut labels, mut pending_newline) = (Vec::new(), Vec::new(), false);
        self.model.dict().get_line(&mut &input[..], &mut words, &mut labels, &mut pending_newline);
        if words.is_empty() {
            return Vec::new();
        }
        match self.model.args().loss {
            LossName::Softmax | LossName::OneVsAll | LossName::NegativeSampling if !self.model.is_quant() => self
                .output(&words)
                .into_iter()
                .enumerate()
                .filter(|&(_, x)| x >= threshold)
                .map(|(i, x)| (std_log(x), i))
                .collect(),
            _ => {
                let scored = self.model.predict_on_words(&words, self.labels.len(), threshold);
                let mut items: Vec<(f32, usize)> = scored.iter().map(|p| (p.prob.ln(), self.index[&p.label])).collect();
                items.sort_unstable_by_key(|&(_, label)| label);
                items
            }
        }
    }

    /// fastText's `Model::computeHidden` and `Loss::computeOutput` for a
    /// full-precision model: every label's score.
    fn output(&self, words: &[i32]) -> Vec<f32> {
        let input = self.model.input_matrix();
        // The rows are scattered over a matrix of tens of megabytes, so each
        // is a cache miss. Reading one value of each cache line of every
        // row first lets the processor wait for many misses at once (the
        // loads do not depend on each other), where the sum below would
        // wait for them a row or two at a time.
        let touched: f32 = words.iter().flat_map(|&word| input.row(i64::from(word)).iter().step_by(16)).sum();
        std::hint::black_box(touched);
        let mut hidden = vec![0.0f32; self.model.args().dim as usize];
        for &word in words {
            for (h, w) in hidden.iter_mut().zip(input.row(i64::from(word))) {
                *h += w;
            }
        }
        let scale = (1.0 / words.len() as f64) as f32;
        for h in &mut hidden {
            *h *= scale;
        }
        let wo = self.model.output_matrix();
        let mut output: Vec<f32> = (0..self.labels.len() as i64)
            .map(|i| wo.row(i).iter().zip(&hidden).fold(0.0f32, |d, (w, h)| d + w * h))
            .collect();
        if self.model.args().loss == LossName::Softmax {
            let max = output.iter().fold(output[0], |m, &x| if x > m { x } else { m });
            let mut z = 0.0f32;
            for x in &mut output {
                *x = f64::from(*x - max).exp() as f32;
                z += *x;
            }
            for x in &mut output {
                *x /= z;
            }
        } else {
            let table = sigmoid_table();
            for x in &mut output {
                *x = sigmoid(table, *x);
            }
        }
        output
    }
}

/// fastText's `Loss::std_log`: `std::log(x + 1e-5)` in double precision.
fn std_log(x: f32) -> f32 {
    (f64::from(x) + 1e-5).ln() as f32
}

const MAX_SIGMOID: f32 = 8.0;
const SIGMOID_TABLE_SIZE: usize = 512;

/// fastText's `t_sigmoid_`: `1.0 / (1.0 + std::exp(-x))` with `x` a float.
fn sigmoid_table() -> &'static [f32; SIGMOID_TABLE_SIZE + 1] {
    static TABLE: OnceLock<[f32; SIGMOID_TABLE_SIZE + 1]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let x = (i as f32 * 2.0 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE as f32 - MAX_SIGMOID;
            (1.0 / (1.0 + f64::from((-x).exp()))) as f32
        })
    })
}

/// fastText's `Loss::sigmoid`: the table entry below `x`.
fn sigmoid(table: &[f32; SIGMOID_TABLE_SIZE + 1], x: f32) -> f32 {
    if x < -MAX_SIGMOID {
        0.0
    } else if x > MAX_SIGMOID {
        1.0
    } else {
        table[((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE as f32 / MAX_SIGMOID / 2.0) as usize]
    }
}

/// fastText's `Loss::findKBest` and the `sort_heap` after it, over
/// `(log-probability, label)` in label order: libstdc++'s heap algorithms with
/// fastText's `comparePairs` (greater first), so that ties land where they
/// land in C++.
fn find_k_best(items: &[(f32, usize)], k: usize) -> Vec<(f32, usize)> {
    let mut heap: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return heap;
    }
    for &item in items {
        if heap.len() == k && item.0 < heap[0].0 {
            continue;
        }
        heap.push(item);
        let last = heap.len() - 1;
        sift_up(&mut heap, last, 0, item);
        if heap.len() > k {
            let len = heap.len();
            pop_heap(&mut heap, len);
            heap.pop();
        }
    }
    for len in (2..=heap.len()).rev() {
        pop_heap(&mut heap, len);
    }
    heap
}

/// fastText's `comparePairs`: `a` sorts before `b` when it is more probable.
fn before(a: &(f32, usize), b: &(f32, usize)) -> bool {
    a.0 > b.0
}

/// libstdc++'s `__push_heap`: moves `value` up from `hole` towards `top`.
fn sift_up(heap: &mut [(f32, usize)], mut hole: usize, top: usize, value: (f32, usize)) {
    while hole > top {
        let parent = (hole - 1) / 2;
        if !before(&heap[parent], &value) {
            break;
        }
        heap[hole] = heap[parent];
        hole = parent;
    }
    heap[hole] = value;
}

/// libstdc++'s `__adjust_heap`: fills the hole at `hole` from below, then
/// places `value`.
fn adjust_heap(heap: &mut [(f32, usize)], mut hole: usize, len: usize, value: (f32, usize)) {
    let top = hole;
    let mut child = hole;
    while len >= 2 && child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if before(&heap[child], &heap[child - 1]) {
            child -= 1;
        }
        heap[hole] = heap[child];
        hole = child;
    }
    if len.is_multiple_of(2) && len >= 2 && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        heap[hole] = heap[child - 1];
        hole = child - 1;
    }
    sift_up(heap, hole, top, value);
}

/// libstdc++'s `pop_heap` over `heap[..len]`: the front goes to `len - 1`.
fn pop_heap(heap: &mut [(f32, usize)], len: usize) {
    if len > 1 {
        let last = len - 1;
        let value = heap[last];
        heap[last] = heap[0];
        adjust_heap(heap, 0, last, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_order_matches_libstdcxx_on_ties() {
        // What `std::sort_heap` leaves for these pushes, with fastText's
        // comparator (checked against g++ 12's libstdc++).
        let order = |probs: &[f32], k: usize| -> Vec<usize> {
            let items: Vec<(f32, usize)> = probs.iter().copied().zip(0..).collect();
            find_k_best(&items, k).iter().map(|p| p.1).collect()
        };
        let a = [0.5, 0.5, 0.2, 0.5, 0.2, 0.9, 0.5];
        assert_eq!(order(&a, 7), [5, 6, 3, 1, 0, 4, 2]);
        assert_eq!(order(&a, 3), [5, 6, 1]);
        let b = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3];
        assert_eq!(order(&b, 10), [9, 4, 3, 1, 7, 8, 5, 6, 2, 0]);
        assert_eq!(order(&b, 4), [9, 3, 1, 8]);
        assert_eq!(order(&b, 0), [0usize; 0]);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(FastTextModel::from_bytes(b"not a model").err().unwrap().0.starts_with("not a fastText model"));
    }
}
