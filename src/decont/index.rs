//! The decontamination index: building it from benchmark records, writing
//! it, and loading it for the step.
//!
//! A loaded index maps each hash to its task in a table keyed by the hash
//! itself (the keys are already uniform): 16 bytes a slot, in a table
//! between 7/16 and 7/8 full, so 36 MiB of peak memory for a million
//! n-grams (`scripts/decont-index-memory.py`), where datatrove's Python
//! dict of int to str takes over 100 bytes each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ngram_hash, words};

/// Which n-grams of a benchmark item are indexed (datatrove's
/// `NGramsDecontConfig`, with its defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexConfig {
    pub n: usize,
    /// n-grams of the question alone.
    pub find_query_ngrams: bool,
    /// n-grams that start in the question and end in the answer.
    pub find_overlap_ngrams: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { n: super::DEFAULT_N, find_query_ngrams: false, find_overlap_ngrams: true }
    }
}

/// What an index folder says of itself, beside its hash files.
pub const META_FILE: &str = "index.json";
pub const SUFFIX: &str = ".index.hashes";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Bad { path: PathBuf, message: String },
    #[error("{}: no `*{SUFFIX}` file: not a decontamination index", path.display())]
    Empty { path: PathBuf },
}

/// datatrove's `NGramsDecontIndexer.compute_hashes`: the answer's
/// n-grams, then (by option) the question's, then those across the two.
pub fn item_hashes(config: &IndexConfig, label: &str, query: Option<&str>, out: &mut BTreeSet<u64>) {
    let n = config.n;
    let label = words(label);
    let mut buffer = String::new();
    for gram in label.windows(n) {
        out.insert(ngram_hash(gram, &mut buffer));
    }
    let Some(query) = query else { return };
    let query = words(query);
    if config.find_query_ngrams {
        for gram in query.windows(n) {
            out.insert(ngram_hash(gram, &mut buffer));
        }
    }
    if config.find_overlap_ngrams {
        // The last n-1-i words of the question and the first i+1 of the answer.
        for i in 0..n - 1 {
            let from_query = n - 1 - i;
            if query.len() >= from_query && label.len() > i {
                let gram: Vec<&String> = query[query.len() - from_query..].iter().chain(&label[..=i]).collect();
                out.insert(ngram_hash(&gram, &mut buffer));
            }
        }
    }
}

/// The file of a task: datatrove's name (spaces as underscores).
pub fn task_file(task: &str) -> String {
    format!("{}{SUFFIX}", task.replace(' ', "_"))
}

/// Each task's hashes, sorted, as little-endian uint64.
pub fn hashes_bytes(hashes: &BTreeSet<u64>) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// The hasher of a table keyed by hashes: the key is its own hash.
#[derive(Default)]
pub struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `index.json`: the config, and counts per task (read by people).
#[derive(Deserialize)]
struct Meta {
    #[serde(flatten)]
    config: IndexConfig,
}

/// A loaded index: each hash and the task it came from.
pub struct Index {
    pub config: Option<IndexConfig>,
    pub tasks: Vec<String>,
    pub hashes: HashMap<u64, u32, BuildHasherDefault<KeyIsHash>>,
}

impl Index {
    /// Reads every `*.index.hashes` under `dir` (in name order: a hash in
    /// two tasks' files belongs to the later, as datatrove loads them) and
    /// `index.json` when there is one (datatrove writes none).
    pub fn load(dir: &Path) -> Result<Index, IndexError> {
        let mut files = Vec::new();
        collect(dir, &mut files).map_err(io(dir))?;
        files.sort();
        if files.is_empty() {
            return Err(IndexError::Empty { path: dir.to_owned() });
        }
        let config = match std::fs::read(dir.join(META_FILE)) {
            Ok(bytes) => {
                let meta: Meta = serde_json::from_slice(&bytes)
                    .map_err(|e| IndexError::Bad { path: dir.join(META_FILE), message: e.to_string() })?;
                Some(meta.config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&dir.join(META_FILE))(e)),
        };
        let mut tasks = Vec::new();
        let mut hashes = HashMap::default();
        for path in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            if bytes.len() % 8 != 0 {
                return Err(IndexError::Bad {
                    path,
                    message: format!("{} bytes is not a whole number of uint64 hashes", bytes.len()),
                });
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
            let task = relative.strip_suffix(SUFFIX).unwrap_or(&relative).to_owned();
            let id = tasks.len() as u32;
            tasks.push(task);
            hashes.reserve(bytes.len() / 8);
            for chunk in bytes.chunks_exact(8) {
                hashes.insert(u64::from_le_bytes(chunk.try_into().expect("8 bytes")), id);
            }
        }
        Ok(Index { config, tasks, hashes })
    }
}

/// An I/O error at `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io { path: path.to_owned(), source }
}

/// The `*.index.hashes` files under `dir`, at any depth (datatrove's `**/`).
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.to_string_lossy().ends_with(SUFFIX) {
            out.push(path);
        }
    }
    Ok(())
}

/// Builds the hash sets of benchmark records: each task's set.
#[derive(Default)]
pub struct Builder {
    pub tasks: BTreeMap<String, BTreeSet<u64>>,
}

impl Builder {
    pub fn add(&mut self, config: &IndexConfig, task: &str, label: &str, query: Option<&str>) {
        item_hashes(config, label, query, self.tasks.entry(task.to_owned()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_ngrams_span_question_and_answer() {
        let config = IndexConfig { n: 3, ..Default::default() };
        let mut got = BTreeSet::new();
        item_hashes(&config, "F G H I", Some("A B C D E"), &mut got);
        let mut want = BTreeSet::new();
        let mut buffer = String::new();
        for gram in ["f g h", "g h i", "d e f", "e f g"] {
            want.insert(ngram_hash(&gram.split(' ').collect::<Vec<_>>(), &mut buffer));
        }
        assert_eq!(got, want);
        let mut query_too = BTreeSet::new();
        item_hashes(&IndexConfig { find_query_ngrams: true, ..config }, "F G H I", Some("A B C D E"), &mut query_too);
        assert_eq!(query_too.len(), 7, "and a b c, b c d, c d e");
    }
}
