//! `curate eval`: a model (checkpoint or Hugging Face folder) on three
//! kinds of task, scored as lm-evaluation-harness scores them.
//!
//! - **Perplexity** of token shards (a folder with manifest.json: its
//!   validation split, else its train split, in windows of `max_length`
//!   tokens) or of text (JSON Lines with a `text` field: each document
//!   encoded with the tokenizer's special tokens, in chunks of `max_length`).
//!   The first token of a window or chunk is not predicted.
//! - **Multiple choice** from JSON Lines `{"context", "choices", "gold"}`:
//!   each choice's log-likelihood after the context, with the continuation
//!   " choice" encoded as lm-evaluation-harness's `_encode_pair` does (the
//!   context's trailing spaces moved onto it, the pair encoded whole and the
//!   context's tokens cut off). `acc` takes the most likely choice,
//!   `acc_norm` the most likely per character of the choice.
//! - **Generation** from JSON Lines `{"prompt", "answer"}`: greedy decoding
//!   until the end token, `max_new_tokens` or one of the `until` strings;
//!   `exact_match` compares the trimmed text with the trimmed answer.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use curate_shards::{Manifest, Split};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::ShardFormat;
use crate::data::{TokenStream, Windows};
use crate::generate::{self, Sampling};
use crate::pretrained::Loaded;

/// What one task scored.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub kind: &'static str,
    /// Documents, questions or prompts scored.
    pub examples: u64,
    pub metrics: Vec<(String, f64)>,
    /// Multiple choice: every choice's log-likelihood, question by question
    /// (as the harness's logged samples have them).
    pub loglikelihoods: Vec<Vec<f64>>,
}

pub struct Evaluator<'a> {
    pub loaded: &'a Loaded,
    pub tokenizer: &'a tokenizers::Tokenizer,
    pub device: Device,
    /// Longest sequence the model is given.
    pub max_length: usize,
}

#[derive(Deserialize)]
struct Choice {
    context: String,
    choices: Vec<String>,
    gold: usize,
}

#[derive(Deserialize)]
struct Prompt {
    prompt: String,
    answer: String,
}

impl Evaluator<'_> {
    fn encode(&self, text: &str, special: bool) -> anyhow::Result<Vec<i64>> {
        let e = self.tokenizer.encode(text, special).map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
        Ok(e.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Summed negative log-likelihood of `ids[1..]` given what precedes
    /// each, for rows of equal length `[B, T]`; one sum per row.
    fn nll_rows(&self, rows: &[Vec<i64>]) -> Vec<f64> {
        let t = rows[0].len() as i64;
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        let ids = Tensor::from_slice(&flat).view([rows.len() as i64, t]).to_device(self.device);
        tch::no_grad(|| {
            let logits = self.loaded.model.forward(&ids.narrow(1, 0, t - 1), None).to_kind(Kind::Float);
            let logp = logits.log_softmax(-1, Kind::Float);
            let picked = logp.gather(2, &ids.narrow(1, 1, t - 1).unsqueeze(2), false).squeeze_dim(2);
            let sums = (-picked).sum_dim_intlist(1, false, Kind::Double).to_device(Device::Cpu);
            Vec::<f64>::try_from(&sums).expect("a vector of sums")
        })
    }

    /// Perplexity of token shards or of a JSON Lines file of texts.
    pub fn perplexity(&self, path: &Path) -> anyhow::Result<TaskResult> {
        let (mut nll, mut tokens, mut examples) = (0.0, 0u64, 0u64);
        if path.join("manifest.json").is_file() {
            let manifest = Manifest::load(&path.join("manifest.json"))?;
            let split = if manifest.tokens(Split::Validation) > 0 { Split::Validation } else { Split::Train };
            let format = if manifest.formats.iter().any(|f| f == "megatron") {
                ShardFormat::Megatron
            } else {
                ShardFormat::Parquet
            };
            let vocab = self.loaded.config.vocab() as u64;
            let stream = TokenStream::open(path, &manifest, split, format, vocab)?;
            // Windows of max_length + 1 tokens predict max_length each.
            let windows = Windows::new(stream, self.max_length);
            if windows.count() == 0 {
                bail!("{}: fewer than {} tokens in its {} split", path.display(), self.max_length + 1, split.as_str());
            }
            for i in 0..windows.count() {
                let mut w = Vec::new();
                windows.read(i, &mut w)?;
                nll += self.nll_rows(&[w])[0];
                tokens += self.max_length as u64;
                examples += 1;
            }
        } else {
            for (line, text) in read_jsonl::<serde_json::Value>(path)? {
                let Some(text) = text.get("text").and_then(|t| t.as_str()) else {
                    bail!("{}:{line}: no string \"text\"", path.display());
                };
                let ids = self.encode(text, true)?;
                for chunk in ids.chunks(self.max_length) {
                    if chunk.len() > 1 {
                        nll += self.nll_rows(&[chunk.to_vec()])[0];
                        tokens += chunk.len() as u64 - 1;
                    }
                }
                examples += 1;
            }
        }
        if tokens == 0 {
            bail!("{}: nothing to predict (every text is one token or none)", path.display());
        }
        let mean = nll / tokens as f64;
        Ok(TaskResult {
            task: task_name(path),
            kind: "perplexity",
            examples,
            metrics: vec![
                ("perplexity".into(), mean.exp()),
                ("nll_per_token".into(), mean),
                ("tokens".into(), tokens as f64),
            ],
            loglikelihoods: Vec::new(),
        })
    }

    /// lm-evaluation-harness's `_encode_pair`: context and continuation tokens.
    fn encode_pair(&self, context: &str, continuation: &str) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let trimmed = context.trim_end_matches(char::is_whitespace);
        let (context, continuation) = (trimmed, format!("{}{continuation}", &context[trimmed.len()..]));
        let whole = self.encode(&format!("{context}{continuation}"), false)?;
        let context_ids = self.encode(context, false)?;
        let continuation_ids = whole[context_ids.len().min(whole.len())..].to_vec();
        Ok((context_ids, continuation_ids))
    }

    /// Log-likelihood of each continuation after its context.
    fn log_likelihoods(&self, context: &str, continuations: &[String]) -> anyhow::Result<Vec<f64>> {
        let mut rows = Vec::new();
        let mut lengths = Vec::new();
        for c in continuations {
            let (mut context_ids, continuation_ids) = self.encode_pair(context, c)?;
            if continuation_ids.is_empty() {
                bail!("the choice {c:?} encodes to no token after its context");
            }
            if context_ids.is_empty() {
                // As the harness: an empty context starts from the end-of-text token.
                let prefix = self.loaded.eos_ids.first().copied().or(self.loaded.bos_id);
                context_ids.push(i64::from(prefix.context("an empty context needs an end-of-text token")?));
            }
            let mut all = context_ids;
            all.extend(&continuation_ids);
            // Left-truncated to max_length + 1 tokens, as the harness does.
            let keep = all.len().min(self.max_length + 1);
            rows.push(all[all.len() - keep..].to_vec());
            lengths.push(continuation_ids.len().min(keep - 1));
        }
        let mut lls = Vec::with_capacity(rows.len());
        for (row, n) in rows.iter().zip(lengths) {
            // The continuation's tokens are the row's last n: only their log-probabilities count.
            let t = row.len() as i64;
            let ids = Tensor::from_slice(row).view([1, t]).to_device(self.device);
            let ll = tch::no_grad(|| {
                let logits = self.loaded.model.forward(&ids.narrow(1, 0, t - 1), None).to_kind(Kind::Float);
                let logp = logits.log_softmax(-1, Kind::Float).narrow(1, t - 1 - n as i64, n as i64);
                let targets = ids.narrow(1, t - n as i64, n as i64).unsqueeze(2);
                logp.gather(2, &targets, false).sum(Kind::Double).double_value(&[])
            });
            lls.push(ll);
        }
        Ok(lls)
    }

    pub fn multiple_choice(&self, path: &Path) -> anyhow::Result<TaskResult> {
        let (mut acc, mut acc_norm, mut n) = (0u64, 0u64, 0u64);
        let mut all = Vec::new();
        for (line, q) in read_jsonl::<Choice>(path)? {
            let at = || format!("{}:{line}", path.display());
            if q.gold >= q.choices.len() {
                bail!("{}: gold {} but {} choices", at(), q.gold, q.choices.len());
            }
            let continuations: Vec<String> = q.choices.iter().map(|c| format!(" {c}")).collect();
            let lls = self.log_likelihoods(&q.context, &continuations).with_context(at)?;
            let normalised: Vec<f64> =
                lls.iter().zip(&q.choices).map(|(ll, c)| ll / c.chars().count().max(1) as f64).collect();
            acc += u64::from(first_max(&lls) == q.gold);
            acc_norm += u64::from(first_max(&normalised) == q.gold);
            all.push(lls);
            n += 1;
        }
        if n == 0 {
            bail!("{}: no questions", path.display());
        }
        Ok(TaskResult {
            task: task_name(path),
            kind: "multiple_choice",
            examples: n,
            metrics: vec![("acc".into(), acc as f64 / n as f64), ("acc_norm".into(), acc_norm as f64 / n as f64)],
            loglikelihoods: all,
        })
    }

    pub fn generation(&self, path: &Path, max_new_tokens: usize, until: &[String]) -> anyhow::Result<TaskResult> {
        let greedy = Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_new_tokens, seed: 0 };
        let (mut right, mut n) = (0u64, 0u64);
        for (line, p) in read_jsonl::<Prompt>(path)? {
            let ids = self.encode(&p.prompt, false)?;
            if ids.is_empty() {
                bail!("{}:{line}: the prompt encodes to no token", path.display());
            }
            let new = generate::generate(self.loaded, &ids, &greedy, true, self.device)
                .with_context(|| format!("{}:{line}", path.display()))?;
            let new: Vec<u32> = new.iter().map(|&t| t as u32).collect();
            let mut text = self.tokenizer.decode(&new, true).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
            if let Some(cut) = until.iter().filter_map(|u| text.find(u.as_str())).min() {
                text.truncate(cut);
            }
            right += u64::from(text.trim() == p.answer.trim());
            n += 1;
        }
        if n == 0 {
            bail!("{}: no prompts", path.display());
        }
        Ok(TaskResult {
            task: task_name(path),
            kind: "generation",
            examples: n,
            metrics: vec![("exact_match".into(), right as f64 / n as f64)],
            loglikelihoods: Vec::new(),
        })
    }
}

/// The index of the first largest value, as numpy's argmax.
fn first_max(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn task_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
    name.trim_end_matches(".jsonl").to_owned()
}

/// Every record of a JSON Lines file with its line number; a line that is
/// not such a record is an error naming it.
fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<(usize, T)>> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.push((i + 1, record));
    }
    Ok(out)
}

/// The results as a table, one line per metric.
pub fn table(results: &[TaskResult]) -> String {
    let mut out = format!("{:<28} {:<16} {:<14} {:>12} {:>8}\n", "task", "kind", "metric", "value", "n");
    for r in results {
        for (metric, value) in &r.metrics {
            out.push_str(&format!("{:<28} {:<16} {:<14} {:>12.4} {:>8}\n", r.task, r.kind, metric, value, r.examples));
        }
    }
    out
}

/// `results.json`: the model, and every task's metrics.
pub fn results_json(model: &Path, results: &[TaskResult]) -> serde_json::Value {
    let tasks: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut m: serde_json::Map<String, serde_json::Value> =
                r.metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
            m.insert("kind".into(), serde_json::json!(r.kind));
            m.insert("examples".into(), serde_json::json!(r.examples));
            if !r.loglikelihoods.is_empty() {
                m.insert("loglikelihoods".into(), serde_json::json!(r.loglikelihoods));
            }
            (r.task.clone(), serde_json::Value::Object(m))
        })
        .collect();
    serde_json::json!({ "model": model, "tasks": tasks })
}

/// The tasks one `curate eval` call runs.
pub struct Tasks {
    pub perplexity: Vec<PathBuf>,
    pub choice: Vec<PathBuf>,
    pub generation: Vec<PathBuf>,
    pub max_new_tokens: usize,
    pub until: Vec<String>,
}

pub fn run(e: &Evaluator, tasks: &Tasks) -> anyhow::Result<Vec<TaskResult>> {
    let mut results = Vec::new();
    for p in &tasks.perplexity {
        results.push(e.perplexity(p)?);
    }
    for p in &tasks.choice {
        results.push(e.multiple_choice(p)?);
    }
    for p in &tasks.generation {
        results.push(e.generation(p, tasks.max_new_tokens, &tasks.until)?);
    }
    Ok(results)
}
