//! `curate tokenizer train`: a byte-level BPE tokenizer (GPT-2 style) trained
//! with the `tokenizers` crate on curated shards, saved as a `tokenizer.json`
//! that Python's `tokenizers` and transformers' `PreTrainedTokenizerFast`
//! load.

use std::path::Path;
use std::sync::Arc;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerImpl};
use xxhash_rust::xxh3::xxh3_64;

use super::error::TokenizeError;
use crate::io::atomic;
use crate::io::doc::FieldNames;
use crate::io::docs::UnitBatches;
use crate::io::plan::Plan;
use crate::io::read::ReadOptions;
use crate::runtime::tally::ErrorTally;

/// End of text, padding, and chat roles: what pre-training and the tuning
/// that follows need, reserved at the start of the vocabulary.
pub const DEFAULT_SPECIAL_TOKENS: &[&str] = &["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"];

pub struct TrainOptions {
    pub vocab_size: usize,
    pub min_frequency: u64,
    pub special_tokens: Vec<String>,
    /// Keep each document with this probability, decided by a hash of its
    /// id (deterministic, streaming).
    pub sample_fraction: f64,
    /// Stop after this many documents.
    pub max_docs: Option<u64>,
    /// GPT-2's pre-tokenisation regex; without it, only byte-level mapping.
    pub use_regex: bool,
}

pub struct TrainReport {
    pub docs: u64,
    pub vocab_size: usize,
    /// Records that did not become documents.
    pub errors: ErrorTally,
}

type Tokenizer =
    TokenizerImpl<ModelWrapper, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// Whether a document is in a hash-based sample of `fraction`.
pub fn sampled(id: &str, fraction: f64) -> bool {
    fraction >= 1.0 || (xxh3_64(id.as_bytes()) as f64) < fraction * u64::MAX as f64
}

/// Larger vocabularies are refused: the trainer's tables grow with the
/// size asked for, and the largest tokenizers in use have a few hundred
/// thousand tokens.
pub const MAX_VOCAB_SIZE: usize = 1 << 24;

pub fn train(plan: &Plan, names: FieldNames, options: &TrainOptions, out: &Path) -> Result<TrainReport, TokenizeError> {
    if options.vocab_size > MAX_VOCAB_SIZE {
        return Err(TokenizeError::VocabularyTooLarge(options.vocab_size));
    }
    if options.vocab_size < 256 + options.special_tokens.len() {
        return Err(TokenizeError::VocabularyTooSmall {
            vocab_size: options.vocab_size,
            special: options.special_tokens.len(),
        });
    }
    let byte_level = ByteLevel::new(false, true, options.use_regex);
    let mut tokenizer: Tokenizer = TokenizerImpl::new(ModelWrapper::BPE(BPE::default()));
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_post_processor(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    let trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(options.vocab_size)
        .min_frequency(options.min_frequency)
        .special_tokens(options.special_tokens.iter().map(|t| AddedToken::from(t.clone(), true)).collect())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);

    let read = Arc::new(ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
    let mut batches = UnitBatches::all(plan, read);
    let mut docs = 0u64;
    let limit = options.max_docs.unwrap_or(u64::MAX);
    let texts = std::iter::from_fn(|| {
        while docs < limit {
            let (_, batch) = batches.next_batch()?;
            let texts: Vec<String> = batch
                .into_iter()
                .filter(|d| sampled(&d.id, options.sample_fraction))
                .take((limit - docs) as usize)
                .map(|d| d.text)
                .collect();
            docs += texts.len() as u64;
            if !texts.is_empty() {
                return Some(texts);
            }
        }
        None
    })
    .flatten();
    tokenizer.train(&mut trainer, texts).map_err(|e| TokenizeError::Training(e.to_string()))?;
    if docs == 0 {
        return Err(TokenizeError::NoDocuments);
    }
    let json = tokenizer.to_string(true).map_err(|e| TokenizeError::Training(e.to_string()))?;
    atomic::write(out, json.as_bytes())?;
    Ok(TrainReport { docs, vocab_size: tokenizer.get_vocab_size(true), errors: batches.errors })
}
