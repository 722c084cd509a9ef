//! `curate tokenize`: documents in, token shards out.
//!
//! Two passes. The first encodes every unit of input in parallel and spills
//! its documents, tokenized, into one file per shuffle bucket; a unit's
//! spill files are committed together, so a killed run re-encodes only the
//! units it had not finished. The second pass orders the documents (input
//! order, or a seeded shuffle: random bucket, then a sort by key inside each
//! bucket, so only one bucket is ever in memory) and writes the final
//! shards, merged across units and rolled by token count, then the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use curate_shards::manifest::MANIFEST_VERSION;
use curate_shards::{Manifest, Split, TokenWidth, TokenizerInfo};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};

use super::spill;
use super::writer::{Formats, ShardSetWriter};
use crate::config::{TokenFormat, TokenizeConfig};
use crate::doc::{Doc, FieldNames};
use crate::engine::progress::{Progress, ProgressMode};
use crate::engine::stats::Occurrences;
use crate::engine::workers::run_units;
use crate::io::atomic;
use crate::io::docs::UnitBatches;
use crate::io::plan::{self, Compression, Plan};
use crate::io::read::ReadOptions;

pub struct TokenizeOptions {
    pub config: TokenizeConfig,
    /// A file, folder or glob, as for `curate run`.
    pub input: String,
    pub names: FieldNames,
    pub output: PathBuf,
    pub threads: usize,
    pub batch_size: usize,
    pub progress: ProgressMode,
}

/// Plain JSON Lines files are encoded in byte ranges of this size.
const SPLIT_BYTES: u64 = 256 << 20;
/// Bytes of (estimated uncompressed) input per shuffle bucket: bounds the
/// memory of the ordering pass.
const BUCKET_BYTES: u64 = 256 << 20;

impl TokenizeOptions {
    fn formats(&self) -> Formats {
        let has = |f| self.config.formats.contains(&f);
        Formats {
            parquet: has(TokenFormat::Parquet),
            megatron: has(TokenFormat::Megatron),
            datatrove: has(TokenFormat::Datatrove),
        }
    }

    fn eos_token(&self) -> Option<String> {
        self.config.eos_token()
    }
}

impl TokenizeConfig {
    fn eos_token(&self) -> Option<String> {
        self.eos.then(|| self.eos_token.clone())
    }
}

/// Loads the tokenizer and checks its special tokens: what a pipeline with
/// a `[tokenize]` step verifies before any work starts.
pub fn check_tokenizer(config: &TokenizeConfig) -> Result<(), String> {
    Encoder::load(config).map(|_| ())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SplitStats {
    pub docs: u64,
    pub tokens: u64,
    pub shards: u64,
}

/// `stats.json` of a tokenization: `input_docs = written_docs +
/// skipped_empty_docs + error_docs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenStats {
    pub input_docs: u64,
    pub written_docs: u64,
    /// Documents that encode to no token at all (empty text, no BOS/EOS):
    /// nothing to train on, so not written.
    pub skipped_empty_docs: u64,
    /// Documents whose text alone encodes to nothing (written when BOS/EOS
    /// gives them tokens).
    pub empty_text_docs: u64,
    pub error_docs: u64,
    pub errors: BTreeMap<String, Occurrences>,
    pub tokens: u64,
    /// Characters of text per token written (BOS/EOS included).
    pub chars_per_token: f64,
    pub text_chars: u64,
    /// Documents by token count, in power-of-two bins: 0, 1, 2-3, 4-7, ...
    pub tokens_per_doc: Vec<Bin>,
    pub splits: BTreeMap<String, SplitStats>,
    pub encode_seconds: f64,
    pub wall_seconds: f64,
}

/// Documents with `min..=max` tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Bin {
    pub min: u64,
    pub max: u64,
    pub docs: u64,
}

impl TokenStats {
    fn count_tokens(&mut self, n: usize, docs: u64) {
        let (min, max) = histogram_bin(n as u64);
        match self.tokens_per_doc.binary_search_by_key(&min, |b| b.min) {
            Ok(i) => self.tokens_per_doc[i].docs += docs,
            Err(i) => self.tokens_per_doc.insert(i, Bin { min, max, docs }),
        }
    }

    fn merge(&mut self, o: &TokenStats) {
        self.input_docs += o.input_docs;
        self.written_docs += o.written_docs;
        self.skipped_empty_docs += o.skipped_empty_docs;
        self.empty_text_docs += o.empty_text_docs;
        self.error_docs += o.error_docs;
        for (k, v) in &o.errors {
            self.errors.entry(k.clone()).or_default().merge(v);
        }
        self.tokens += o.tokens;
        self.text_chars += o.text_chars;
        for bin in &o.tokens_per_doc {
            self.count_tokens(bin.min as usize, bin.docs);
        }
        self.encode_seconds += o.encode_seconds;
    }
}

/// The power-of-two bin `n` falls in: (0, 0), (1, 1), (2, 3), (4, 7), ...
fn histogram_bin(n: u64) -> (u64, u64) {
    if n == 0 {
        return (0, 0);
    }
    let lo = 1u64 << (u64::BITS - 1 - n.leading_zeros());
    (lo, lo * 2 - 1)
}

/// What `.spill/run.json` records: a resumed run must have the same options
/// and input.
#[derive(Serialize)]
struct Fingerprint<'a> {
    tokenizer: &'a str,
    formats: Vec<String>,
    shard_tokens: u64,
    shuffle_seed: Option<u64>,
    validation_fraction: f64,
    eos: Option<String>,
    bos: &'a Option<String>,
    metadata: &'a [String],
    buckets: usize,
    names: (&'a str, &'a str),
    plan: &'a Plan,
}

struct Encoder {
    tokenizer: tokenizers::Tokenizer,
    eos: Option<u32>,
    bos: Option<u32>,
    vocab_size: usize,
}

impl Encoder {
    fn load(config: &TokenizeConfig) -> Result<(Encoder, String), String> {
        let path = &config.tokenizer;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read tokenizer {path}: {e}"))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| format!("{path} is not a usable tokenizer.json: {e}"))?;
        let special = |token: &Option<String>, what: &str| -> Result<Option<u32>, String> {
            token
                .as_ref()
                .map(|t| {
                    tokenizer
                        .token_to_id(t)
                        .ok_or_else(|| format!("{what} token {t:?} is not in the vocabulary of {path}"))
                })
                .transpose()
        };
        let eos = special(&config.eos_token(), "end-of-text")?;
        let bos = special(&config.bos_token, "beginning-of-text")?;
        let vocab_size = tokenizer.get_vocab_size(true);
        Ok((Encoder { tokenizer, eos, bos, vocab_size }, format!("{:032x}", xxh3_128(&bytes))))
    }

    /// Token ids of the text alone, and with BOS/EOS.
    fn encode(&self, text: &str) -> Result<(usize, Vec<u32>), String> {
        let encoding = self.tokenizer.encode_fast(text, false).map_err(|e| e.to_string())?;
        let ids = encoding.get_ids();
        let mut tokens = Vec::with_capacity(ids.len() + 2);
        tokens.extend(self.bos);
        tokens.extend_from_slice(ids);
        tokens.extend(self.eos);
        Ok((ids.len(), tokens))
    }
}

pub struct TokenizeReport {
    pub stats: TokenStats,
    pub manifest: Manifest,
    pub already_done: bool,
}

pub fn tokenize(options: &TokenizeOptions) -> Result<TokenizeReport, String> {
    let started = Instant::now();
    let (encoder, tokenizer_hash) = Encoder::load(&options.config)?;
    let width = TokenWidth::for_vocab(encoder.vocab_size);
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(|e| e.to_string())?;
    let out = &options.output;
    let spill_dir = out.join(".spill");
    let manifest_path = out.join("manifest.json");
    let stats_path = out.join("stats.json");

    let estimated: u64 =
        plan.files.iter().map(|f| if f.compression == Compression::None { f.size } else { f.size * 4 }).sum();
    let buckets = match options.config.shuffle_seed {
        Some(_) => (estimated / BUCKET_BYTES + 1).next_power_of_two() as usize,
        None => 1,
    };
    let fingerprint = Fingerprint {
        tokenizer: &tokenizer_hash,
        formats: options.formats().names(),
        shard_tokens: options.config.shard_tokens,
        shuffle_seed: options.config.shuffle_seed,
        validation_fraction: options.config.validation_fraction,
        eos: options.eos_token(),
        bos: &options.config.bos_token,
        metadata: &options.config.metadata,
        buckets,
        names: (&options.names.text, &options.names.id),
        plan: &plan,
    };
    let fingerprint =
        format!("{:032x}", xxh3_128(serde_json::to_string(&fingerprint).expect("serialisable").as_bytes()));
    std::fs::create_dir_all(&spill_dir).map_err(|e| format!("cannot create {}: {e}", spill_dir.display()))?;
    let run_path = out.join(".run.json");
    match atomic::claim(&run_path, &fingerprint, "tokenize").map_err(|e| format!("{}: {e}", run_path.display()))? {
        atomic::Claim::Other => {
            return Err(format!(
                "{} holds token shards of another tokenizer, input or options; use another output folder, or delete this one",
                out.display()
            ))
        }
        atomic::Claim::Same => {
            if let (Ok(m), Ok(s)) = (Manifest::load(&manifest_path), std::fs::read(&stats_path)) {
                let stats = serde_json::from_slice(&s).map_err(|e| format!("{}: {e}", stats_path.display()))?;
                return Ok(TokenizeReport { stats, manifest: m, already_done: true });
            }
        }
        atomic::Claim::Fresh => {}
    }

    // Pass 1: encode and spill, units in parallel.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(options.threads).build().map_err(|e| e.to_string())?;
    let read =
        Arc::new(ReadOptions { names: options.names.clone(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let progress = Progress::start(plan.units.iter().map(|u| u.bytes).sum(), options.progress);
    let ctx = UnitContext {
        plan: &plan,
        read,
        encoder: &encoder,
        options,
        spill_dir: &spill_dir,
        buckets,
        progress: &progress,
    };
    let abort = AtomicBool::new(false);
    let results = run_units(plan.units.len(), options.threads, &pool, &abort, |i| encode_unit(&ctx, i));
    progress.finish();
    let mut stats = TokenStats::default();
    for r in results.into_iter().flatten() {
        stats.merge(&r?);
    }

    // Pass 2: order and write the final shards.
    let shards = |split| {
        let c = &options.config;
        ShardSetWriter::new(out, split, width, options.formats(), c.shard_tokens, &c.metadata, &c.tokenizer)
    };
    let (mut train, mut validation) = (shards(Split::Train), shards(Split::Validation));
    let io_err = |e: std::io::Error| format!("writing shards in {}: {e}", out.display());
    let mut add = |r: spill::Record| match r.split {
        Split::Train => train.add(r),
        Split::Validation => validation.add(r),
    };
    for bucket in 0..buckets {
        let mut records = Vec::new();
        for unit in 0..plan.units.len() {
            let path = spill_path(&spill_dir, unit, bucket);
            let mut reader = spill::Reader::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            while let Some(r) = reader.read_record().map_err(|e| e.to_string())? {
                if options.config.shuffle_seed.is_some() {
                    records.push(r);
                } else {
                    add(r).map_err(io_err)?;
                }
            }
        }
        records.par_sort_unstable_by_key(|r| (r.key, r.unit, r.seq));
        for r in records {
            add(r).map_err(io_err)?;
        }
    }
    let mut shards = train.finish().map_err(io_err)?;
    shards.extend(validation.finish().map_err(io_err)?);
    for split in [Split::Train, Split::Validation] {
        let s = stats.splits.entry(split.as_str().to_owned()).or_default();
        for shard in shards.iter().filter(|sh| sh.split == split) {
            s.docs += shard.docs;
            s.tokens += shard.tokens;
            s.shards += 1;
        }
    }
    stats.chars_per_token = if stats.tokens > 0 { stats.text_chars as f64 / stats.tokens as f64 } else { 0.0 };
    stats.wall_seconds = started.elapsed().as_secs_f64();
    let accounted = stats.written_docs + stats.skipped_empty_docs + stats.error_docs;
    if stats.input_docs != accounted {
        return Err(format!(
            "stats do not add up: input_docs {} != {accounted}; this is a bug in curate",
            stats.input_docs
        ));
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        tokenizer: TokenizerInfo {
            hash: tokenizer_hash,
            vocab_size: encoder.vocab_size,
            eos_id: encoder.eos,
            bos_id: encoder.bos,
        },
        token_width: width,
        formats: options.formats().names(),
        shuffle_seed: options.config.shuffle_seed,
        shards,
    };
    atomic::write(&stats_path, &serde_json::to_vec_pretty(&stats).expect("serialisable"))
        .map_err(|e| format!("{}: {e}", stats_path.display()))?;
    atomic::write(&manifest_path, &serde_json::to_vec_pretty(&manifest).expect("serialisable"))
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let _ = std::fs::remove_dir_all(&spill_dir);
    Ok(TokenizeReport { stats, manifest, already_done: false })
}

struct UnitContext<'a> {
    plan: &'a Plan,
    read: Arc<ReadOptions>,
    encoder: &'a Encoder,
    options: &'a TokenizeOptions,
    spill_dir: &'a Path,
    buckets: usize,
    progress: &'a Progress,
}

fn spill_path(dir: &Path, unit: usize, bucket: usize) -> PathBuf {
    dir.join(format!("{unit:06}-{bucket:05}.spill"))
}

/// The text of a metadata field: a JSON string unquoted, other values as JSON.
fn metadata_value(doc: &Doc, field: &str) -> Option<String> {
    let (_, raw) = doc.fields.iter().find(|(k, _)| k == field)?;
    match raw.get().as_bytes()[0] {
        b'n' => None,
        b'"' => serde_json::from_str(raw.get()).ok(),
        _ => Some(raw.get().to_owned()),
    }
}

fn encode_unit(ctx: &UnitContext, unit: usize) -> Result<TokenStats, String> {
    let done = ctx.spill_dir.join(format!("{unit:06}.done"));
    let unit_bytes = ctx.plan.units[unit].bytes;
    if let Ok(bytes) = std::fs::read(&done) {
        if let Ok(stats) = serde_json::from_slice::<TokenStats>(&bytes) {
            ctx.progress.add(unit_bytes, stats.input_docs);
            return Ok(stats);
        }
    }
    let options = ctx.options;
    let paths: Vec<PathBuf> = (0..ctx.buckets).map(|b| spill_path(ctx.spill_dir, unit, b)).collect();
    let io_err = |e: std::io::Error| format!("{}: {e}", ctx.spill_dir.display());
    let mut writers = paths
        .iter()
        .map(|p| spill::Writer::create(&atomic::temp_path(p)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    let mut stats = TokenStats::default();
    let mut batches = UnitBatches::new(ctx.plan, vec![unit], ctx.read.clone());
    let mut seq = 0u64;
    let bucket_shift = ctx.buckets.trailing_zeros();
    while let Some((_, docs)) = batches.next_batch() {
        let t = Instant::now();
        let encoded: Vec<Result<(usize, Vec<u32>), String>> =
            docs.par_iter().map(|d| ctx.encoder.encode(&d.text)).collect();
        stats.encode_seconds += t.elapsed().as_secs_f64();
        stats.input_docs += docs.len() as u64;
        ctx.progress.add(0, docs.len() as u64);
        for (doc, result) in docs.iter().zip(encoded) {
            let (text_tokens, tokens) = match result {
                Ok(r) => r,
                Err(e) => {
                    stats.error_docs += 1;
                    stats
                        .errors
                        .entry("tokenizer".into())
                        .or_default()
                        .add(1, || format!("document {:?}: {e}", doc.id));
                    continue;
                }
            };
            if text_tokens == 0 {
                stats.empty_text_docs += 1;
            }
            if tokens.is_empty() {
                stats.skipped_empty_docs += 1;
                continue;
            }
            let seed = options.config.shuffle_seed.unwrap_or(0);
            let split = if options.config.validation_fraction > 0.0
                && (xxh3_64_with_seed(doc.id.as_bytes(), seed ^ 0x7661_6c69_6461_7465) as f64)
                    < options.config.validation_fraction * u64::MAX as f64
            {
                Split::Validation
            } else {
                Split::Train
            };
            let key = match options.config.shuffle_seed {
                Some(seed) => xxh3_64_with_seed(doc.id.as_bytes(), seed),
                None => 0,
            };
            let bucket = if ctx.buckets > 1 { (key >> (64 - bucket_shift)) as usize } else { 0 };
            stats.written_docs += 1;
            stats.tokens += tokens.len() as u64;
            stats.text_chars += doc.text.chars().count() as u64;
            stats.count_tokens(tokens.len(), 1);
            let metadata = options.config.metadata.iter().map(|f| metadata_value(doc, f)).collect();
            let record = spill::Record { key, unit: unit as u32, seq, split, id: doc.id.clone(), metadata, tokens };
            seq += 1;
            writers[bucket].write(&record).map_err(io_err)?;
        }
    }
    stats.input_docs += batches.error_docs;
    stats.error_docs += batches.error_docs;
    for (k, v) in batches.errors {
        stats.errors.insert(k, v);
    }
    for (w, p) in writers.into_iter().zip(&paths) {
        w.finish().map_err(io_err)?;
        std::fs::rename(atomic::temp_path(p), p).map_err(io_err)?;
    }
    atomic::write(&done, &serde_json::to_vec(&stats).expect("serialisable")).map_err(io_err)?;
    ctx.progress.add(unit_bytes, 0);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_powers_of_two_and_stay_sorted() {
        let bins: Vec<(u64, u64)> = [0, 1, 2, 3, 4, 7, 8, 1000].iter().map(|&n| histogram_bin(n)).collect();
        assert_eq!(bins, [(0, 0), (1, 1), (2, 3), (2, 3), (4, 7), (4, 7), (8, 15), (512, 1023)]);
        let mut stats = TokenStats::default();
        for n in [1000, 3, 2, 0, 1000] {
            stats.count_tokens(n, 1);
        }
        let docs: Vec<(u64, u64)> = stats.tokens_per_doc.iter().map(|b| (b.min, b.docs)).collect();
        assert_eq!(docs, [(0, 1), (2, 2), (512, 2)]);
    }
}
