//! `curate tokenize`: documents in, token shards out.
//!
//! Two passes. The first ([`encode_pass`]) encodes every unit of input in
//! parallel through the stage driver ([`crate::stage`]) and spills its
//! documents, tokenized, into one file per shuffle bucket; a unit's spill
//! files are published together, then its marker, so a killed run
//! re-encodes only the units it had not finished. The second
//! ([`order_pass`]) orders the documents (input order, or a seeded shuffle:
//! random bucket, then a sort by key inside each bucket, so only one bucket
//! is ever in memory) and writes the final shards, merged across units and
//! rolled by token count; then the stats and the manifest.
//!
//! ```text
//! TOKENS/manifest.json, stats.json       written last: their presence means complete
//! TOKENS/.curate/                        the stage's bookkeeping (fingerprint, unit markers)
//! TOKENS/.spill/000012-00003.spill       unit 12's documents of bucket 3, until the end
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use curate_shards::manifest::MANIFEST_VERSION;
use curate_shards::{Manifest, ShardInfo, Split, TokenWidth, TokenizerInfo};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64_with_seed};

use super::chat::{self, ChatTemplate, RecordError, TrainOn};
use super::config::{TokenFormat, TokenizeConfig};
use super::error::TokenizeError;
use super::spill;
use super::writer::{Formats, ShardSetWriter};
use crate::io::atomic;
use crate::io::doc::{Doc, FieldNames};
use crate::io::docs::UnitBatches;
use crate::io::format::Compression;
use crate::io::plan::{self, Ignored, Plan, Unit};
use crate::io::read::ReadOptions;
use crate::runtime::pool;
use crate::runtime::progress::{ProgressMode, UnitProgress};
use crate::runtime::tally::ErrorTally;
use crate::runtime::task::Task;
use crate::stage::{Stage, StageDir, StageError, StageStats, Unbalanced};

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
    /// The fields read: chat records keep their `messages` (the text field,
    /// unless another was named) as JSON, and may lack it for `prompt` and
    /// `completion`.
    fn read_names(&self) -> FieldNames {
        let mut names = self.names.clone();
        if self.config.chat {
            if names.text == "text" {
                names.text = "messages".into();
            }
            names.raw_text = true;
        }
        names
    }

    fn formats(&self) -> Formats {
        let has = |f| self.config.formats.contains(&f);
        Formats {
            parquet: has(TokenFormat::Parquet),
            megatron: has(TokenFormat::Megatron),
            datatrove: has(TokenFormat::Datatrove),
            loss_mask: self.config.chat,
        }
    }
}

/// Loads the tokenizer and checks its special tokens: what a pipeline with
/// a `[tokenize]` step verifies before any work starts.
pub fn check_tokenizer(config: &TokenizeConfig) -> Result<(), TokenizeError> {
    Encoder::load(config).map(drop)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SplitStats {
    pub docs: u64,
    pub tokens: u64,
    pub shards: u64,
}

/// `stats.json` of a tokenization: `input_docs = written_docs +
/// skipped_empty_docs + skipped_untrained_docs + error_docs`.
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
    /// Chat records with no token to train on (a conversation without an
    /// assistant turn, an empty completion): not written.
    #[serde(default)]
    pub skipped_untrained_docs: u64,
    /// Chat data: tokens the loss counts.
    #[serde(default)]
    pub trained_tokens: u64,
    /// Preference pairs (`prompt`, `chosen`, `rejected`) among the written
    /// documents: each is two sequences, chosen then rejected.
    #[serde(default)]
    pub pairs: u64,
    #[serde(flatten)]
    pub errors: ErrorTally,
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
}

impl StageStats for TokenStats {
    fn merge(&mut self, o: &TokenStats) {
        self.input_docs += o.input_docs;
        self.written_docs += o.written_docs;
        self.skipped_empty_docs += o.skipped_empty_docs;
        self.empty_text_docs += o.empty_text_docs;
        self.skipped_untrained_docs += o.skipped_untrained_docs;
        self.trained_tokens += o.trained_tokens;
        self.pairs += o.pairs;
        self.errors.merge(&o.errors);
        self.tokens += o.tokens;
        self.text_chars += o.text_chars;
        for bin in &o.tokens_per_doc {
            self.count_tokens(bin.min as usize, bin.docs);
        }
        self.encode_seconds += o.encode_seconds;
    }

    fn docs(&self) -> u64 {
        self.input_docs
    }

    fn check(&self) -> Result<(), Unbalanced> {
        let accounted = self.written_docs + self.skipped_empty_docs + self.skipped_untrained_docs + self.errors.docs;
        if self.input_docs != accounted {
            return Err(Unbalanced(format!(
                "input_docs {} != written_docs {} + skipped_empty_docs {} + skipped_untrained_docs {} + error_docs {}",
                self.input_docs,
                self.written_docs,
                self.skipped_empty_docs,
                self.skipped_untrained_docs,
                self.errors.docs
            )));
        }
        self.errors.imbalance().map_or(Ok(()), |why| Err(Unbalanced(why)))
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

/// What `.curate/run.json` records: a resumed run must have the same
/// options and input.
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
    /// The template's source and text, and what is trained on.
    chat: Option<(String, String, TrainOn)>,
    buckets: usize,
    names: (&'a str, &'a str),
    plan: &'a Plan,
}

struct Encoder {
    tokenizer: tokenizers::Tokenizer,
    eos: Option<u32>,
    bos: Option<u32>,
    vocab_size: usize,
    chat: Option<Chat>,
}

/// What chat records are rendered with.
struct Chat {
    template: ChatTemplate,
    /// The template file's text, for the fingerprint.
    text: String,
    train_on: TrainOn,
}

/// Why a chat record has no tokens.
enum ChatFailure {
    Record(RecordError),
    Tokenizer(String),
}

impl From<RecordError> for ChatFailure {
    fn from(e: RecordError) -> ChatFailure {
        ChatFailure::Record(e)
    }
}

/// One document's tokens; for chat data, with its loss mask.
struct Encoded {
    text_tokens: usize,
    tokens: Vec<u32>,
    mask: Vec<u8>,
    /// Characters of the text encoded (for chat data, the rendered conversation).
    chars: u64,
}

impl Encoder {
    /// The tokenizer, and the hash of its file (for the fingerprint and the manifest).
    fn load(config: &TokenizeConfig) -> Result<(Encoder, String), TokenizeError> {
        let path = PathBuf::from(&config.tokenizer);
        let bytes =
            std::fs::read(&path).map_err(|source| TokenizeError::TokenizerUnreadable { path: path.clone(), source })?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| TokenizeError::TokenizerInvalid { path: path.clone(), message: e.to_string() })?;
        let special = |token: &Option<String>, what: &'static str| -> Result<Option<u32>, TokenizeError> {
            token
                .as_ref()
                .map(|t| {
                    tokenizer.token_to_id(t).ok_or_else(|| TokenizeError::UnknownToken {
                        path: path.clone(),
                        what,
                        token: t.clone(),
                    })
                })
                .transpose()
        };
        let chat = match config.chat {
            false => None,
            true => {
                let template = ChatTemplate::load(&path, config.chat_template.as_deref().map(Path::new))?;
                let text = std::fs::read_to_string(&template.source).unwrap_or_default();
                Some(Chat { template, text, train_on: config.train_on })
            }
        };
        // Chat data ends its plain-text completions with the template's end
        // token, when the tokenizer's config names one.
        let eos_token = match chat.as_ref().and_then(|c| c.template.special("eos_token")) {
            Some(t) if config.eos => Some(t.to_owned()),
            _ => config.eos_token(),
        };
        let eos = special(&eos_token, "end-of-text")?;
        let bos = special(&config.bos_token, "beginning-of-text")?;
        let vocab_size = tokenizer.get_vocab_size(true);
        Ok((Encoder { tokenizer, eos, bos, vocab_size, chat }, format!("{:032x}", xxh3_128(&bytes))))
    }

    /// A document's sequences: one, or a preference pair's two.
    fn encode_doc(&self, doc: &Doc) -> Result<Vec<Encoded>, (&'static str, String)> {
        match &self.chat {
            None => self
                .encode(&doc.text)
                .map(|(text_tokens, tokens)| {
                    vec![Encoded { text_tokens, tokens, mask: Vec::new(), chars: doc.text.chars().count() as u64 }]
                })
                .map_err(|e| ("tokenizer", e.to_string())),
            Some(chat) => self.encode_chat(chat, doc).map_err(|e| match e {
                ChatFailure::Record(e) => (e.kind(), e.to_string()),
                ChatFailure::Tokenizer(e) => ("tokenizer", e),
            }),
        }
    }

    /// A chat record to its sequences: `messages`, or `prompt` and
    /// `completion` (both text, or both messages), give one; a preference
    /// pair, `prompt` with `chosen` and `rejected` (or, without `prompt`, two
    /// conversations whose shared first messages are the prompt), gives two
    /// (chosen first), each trained on its completion.
    fn encode_chat(&self, chat: &Chat, doc: &Doc) -> Result<Vec<Encoded>, ChatFailure> {
        let record = |m: String| ChatFailure::Record(RecordError::Record(m));
        let field = |name: &str| doc.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.get());
        if !doc.text.is_empty() {
            let messages = chat::parse_messages(&doc.text).map_err(|e| record(format!("messages {e}")))?;
            return Ok(vec![self.encode_rendered(chat.template.messages(&messages, chat.train_on)?, false)?]);
        }
        match (field("prompt"), field("completion"), field("chosen"), field("rejected")) {
            (Some(prompt), Some(completion), None, None) => {
                let (rendered, plain) = self.render_pair(chat, prompt, completion, "completion", chat.train_on)?;
                Ok(vec![self.encode_rendered(rendered, plain)?])
            }
            (Some(prompt), None, Some(chosen), Some(rejected)) => {
                // DPO compares the completions: only they are trained on.
                let mut out = Vec::with_capacity(2);
                for (completion, what) in [(chosen, "chosen"), (rejected, "rejected")] {
                    let (rendered, plain) = self.render_pair(chat, prompt, completion, what, TrainOn::Completion)?;
                    out.push(self.encode_rendered(rendered, plain)?);
                }
                Ok(out)
            }
            (None, None, Some(chosen), Some(rejected)) => {
                // TRL's implicit prompt: two conversations that share their start.
                let parse =
                    |raw: &str, what: &str| chat::parse_messages(raw).map_err(|e| record(format!("{what} {e}")));
                let (chosen, rejected) = (parse(chosen, "chosen")?, parse(rejected, "rejected")?);
                let shared = chosen.iter().zip(&rejected).take_while(|(a, b)| a == b).count();
                if shared == 0 || shared == chosen.len() || shared == rejected.len() {
                    return Err(record(
                        "without \"prompt\", chosen and rejected must be conversations that share their first \
                         messages and then differ"
                            .into(),
                    ));
                }
                let prompt = &chosen[..shared];
                let mut out = Vec::with_capacity(2);
                for completion in [&chosen[shared..], &rejected[shared..]] {
                    let rendered = chat.template.prompt_completion(prompt, completion, TrainOn::Completion)?;
                    out.push(self.encode_rendered(rendered, false)?);
                }
                Ok(out)
            }
            _ => Err(record(
                "no \"messages\", nor \"prompt\" with \"completion\" or with \"chosen\" and \"rejected\"".into(),
            )),
        }
    }

    /// A prompt and one completion, both text (joined; `true`) or both
    /// messages (rendered with the template).
    fn render_pair(
        &self,
        chat: &Chat,
        prompt: &str,
        completion: &str,
        what: &str,
        train_on: TrainOn,
    ) -> Result<(chat::Rendered, bool), ChatFailure> {
        let record = |m: String| ChatFailure::Record(RecordError::Record(m));
        let text = |raw: &str| serde_json::from_str::<String>(raw).ok();
        match (text(prompt), text(completion)) {
            (Some(p), Some(c)) => {
                let start = if train_on == TrainOn::All { 0 } else { p.len() };
                Ok((chat::Rendered::trained_from(p + &c, start), true))
            }
            _ => {
                let parse =
                    |raw: &str, what: &str| chat::parse_messages(raw).map_err(|e| record(format!("{what} {e}")));
                let (p, c) = (parse(prompt, "prompt")?, parse(completion, what)?);
                Ok((chat.template.prompt_completion(&p, &c, train_on)?, false))
            }
        }
    }

    /// Tokens of a rendered conversation and the mask of those trained on;
    /// plain text gets BOS and EOS as documents do.
    fn encode_rendered(&self, rendered: chat::Rendered, plain: bool) -> Result<Encoded, ChatFailure> {
        let encoding =
            self.tokenizer.encode(rendered.text.as_str(), false).map_err(|e| ChatFailure::Tokenizer(e.to_string()))?;
        let mut tokens = Vec::with_capacity(encoding.len() + 2);
        let mut mask = Vec::with_capacity(encoding.len() + 2);
        if plain {
            tokens.extend(self.bos);
            mask.extend(self.bos.map(|_| 0u8));
        }
        tokens.extend_from_slice(encoding.get_ids());
        // As transformers' assistant mask: a token is trained on when it
        // overlaps a trained span. Spans and offsets are both in order.
        let mut spans = rendered.trained.iter().peekable();
        for &(start, end) in encoding.get_offsets() {
            while spans.peek().is_some_and(|s| start >= s.end) {
                spans.next();
            }
            mask.push(spans.peek().is_some_and(|s| end > s.start) as u8);
        }
        if plain {
            if let Some(eos) = self.eos {
                tokens.push(eos);
                mask.push(1);
            }
        }
        Ok(Encoded { text_tokens: encoding.len(), tokens, mask, chars: rendered.text.chars().count() as u64 })
    }

    /// Token ids of the text alone, and with BOS/EOS.
    fn encode(&self, text: &str) -> tokenizers::Result<(usize, Vec<u32>)> {
        let encoding = self.tokenizer.encode_fast(text, false)?;
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
    /// What the input holds that was not read, and why.
    pub ignored: Vec<Ignored>,
}

/// Where a tokenization keeps its files.
struct Layout {
    out: PathBuf,
    spill: PathBuf,
    manifest: PathBuf,
    stats: PathBuf,
    stage: StageDir,
}

impl Layout {
    fn new(out: &Path) -> Layout {
        Layout {
            out: out.to_owned(),
            spill: out.join(".spill"),
            manifest: out.join("manifest.json"),
            stats: out.join("stats.json"),
            stage: StageDir::within(out.join(".curate")),
        }
    }

    fn spill_path(&self, unit: usize, bucket: usize) -> PathBuf {
        self.spill.join(format!("{unit:06}-{bucket:05}.spill"))
    }
}

pub fn tokenize(options: &TokenizeOptions) -> Result<TokenizeReport, TokenizeError> {
    let started = Instant::now();
    options.config.validate()?;
    let (encoder, tokenizer_hash) = Encoder::load(&options.config)?;
    let plan = plan::plan(&options.input, None, SPLIT_BYTES).map_err(StageError::from)?;
    plan::refuse_output_in_input(&options.input, &options.output).map_err(StageError::from)?;
    let layout = Layout::new(&options.output);
    let estimated: u64 =
        plan.files.iter().map(|f| if f.compression == Compression::None { f.size } else { f.size * 4 }).sum();
    let buckets = match options.config.shuffle_seed {
        Some(_) => (estimated / BUCKET_BYTES + 1).next_power_of_two() as usize,
        None => 1,
    };
    let fingerprint = fingerprint(options, &encoder, &tokenizer_hash, buckets, &plan);
    if let Some((stats, manifest)) = finished(&layout, &fingerprint)? {
        return Ok(TokenizeReport { stats, manifest, already_done: true, ignored: plan.ignored });
    }
    layout.stage.create()?;
    atomic::create_dir(&layout.spill)?;
    let stage = Stage::<TokenStats>::claim(
        &layout.stage,
        &plan,
        Task::ALONE,
        &fingerprint,
        "token shards of another tokenizer, input or options",
        |unit| (0..buckets).all(|b| layout.spill_path(unit, b).is_file()),
    )?;
    let mut stats = encode_pass(stage, options, &encoder, &plan, &layout, buckets)?;
    let width = TokenWidth::for_vocab(encoder.vocab_size);
    let shards = order_pass(options, &plan, &layout, buckets, width)?;
    for split in [Split::Train, Split::Validation] {
        let s = stats.splits.entry(split.as_str().to_owned()).or_default();
        for shard in shards.iter().filter(|sh| sh.split == split) {
            s.docs += shard.docs;
            s.tokens += shard.tokens;
            s.shards += 1;
        }
    }
    if stats.pairs > 0 && stats.pairs < stats.written_docs {
        return Err(TokenizeError::MixedPairs { pairs: stats.pairs, others: stats.written_docs - stats.pairs });
    }
    stats.chars_per_token = if stats.tokens > 0 { stats.text_chars as f64 / stats.tokens as f64 } else { 0.0 };
    stats.wall_seconds = started.elapsed().as_secs_f64();
    stats.check().map_err(StageError::from)?;
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
        loss_mask: options.config.chat,
        pairs: stats.pairs > 0,
        shards,
    };
    atomic::write(&layout.stats, &serde_json::to_vec_pretty(&stats).expect("serialisable"))?;
    atomic::write(&layout.manifest, &serde_json::to_vec_pretty(&manifest).expect("serialisable"))?;
    atomic::remove_dir(&layout.spill)?;
    Ok(TokenizeReport { stats, manifest, already_done: false, ignored: plan.ignored })
}

fn fingerprint(
    options: &TokenizeOptions,
    encoder: &Encoder,
    tokenizer_hash: &str,
    buckets: usize,
    plan: &Plan,
) -> String {
    let names = options.read_names();
    let fingerprint = Fingerprint {
        tokenizer: tokenizer_hash,
        formats: options.formats().names(),
        shard_tokens: options.config.shard_tokens,
        shuffle_seed: options.config.shuffle_seed,
        validation_fraction: options.config.validation_fraction,
        eos: options.config.eos_token(),
        bos: &options.config.bos_token,
        metadata: &options.config.metadata,
        chat: encoder.chat.as_ref().map(|c| (c.template.source.display().to_string(), c.text.clone(), c.train_on)),
        buckets,
        names: (&names.text, &names.id),
        plan,
    };
    format!("{:032x}", xxh3_128(serde_json::to_string(&fingerprint).expect("serialisable").as_bytes()))
}

/// The stats and manifest of a tokenization already complete in the output
/// folder with this fingerprint: they are there, written last.
fn finished(layout: &Layout, fingerprint: &str) -> Result<Option<(TokenStats, Manifest)>, TokenizeError> {
    if layout.stage.fingerprint().as_deref() != Some(fingerprint) {
        return Ok(None);
    }
    let (Ok(manifest), Ok(bytes)) = (Manifest::load(&layout.manifest), std::fs::read(&layout.stats)) else {
        return Ok(None);
    };
    let stats = serde_json::from_slice(&bytes)
        .map_err(|source| TokenizeError::FinishedStats { path: layout.stats.clone(), source })?;
    Ok(Some((stats, manifest)))
}

/// Pass 1: every unit encoded and spilled, in parallel.
fn encode_pass(
    stage: Stage<TokenStats>,
    options: &TokenizeOptions,
    encoder: &Encoder,
    plan: &Plan,
    layout: &Layout,
    buckets: usize,
) -> Result<TokenStats, TokenizeError> {
    let pool = pool::pool(options.threads).map_err(StageError::from)?;
    let read =
        Arc::new(ReadOptions { names: options.read_names(), batch_size: options.batch_size, batch_bytes: 16 << 20 });
    let spiller = Spiller { plan, read, encoder, options, layout, buckets };
    stage.run(TokenStats::default(), &pool, options.threads, options.progress, |unit, progress, _| {
        spiller.unit(unit, progress).map(Some)
    })
}

/// Pass 2: the spilled documents in their final order, written as shards.
fn order_pass(
    options: &TokenizeOptions,
    plan: &Plan,
    layout: &Layout,
    buckets: usize,
    width: TokenWidth,
) -> Result<Vec<ShardInfo>, TokenizeError> {
    let shards = |split| {
        let c = &options.config;
        ShardSetWriter::new(&layout.out, split, width, options.formats(), c.shard_tokens, &c.metadata, &c.tokenizer)
    };
    let (mut train, mut validation) = (shards(Split::Train), shards(Split::Validation));
    let shard_error = |source: std::io::Error| TokenizeError::Shards { folder: layout.out.clone(), source };
    let mut add = |r: spill::Record| match r.split {
        Split::Train => train.add(r),
        Split::Validation => validation.add(r),
    };
    for bucket in 0..buckets {
        let mut records = Vec::new();
        for unit in 0..plan.units.len() {
            let path = layout.spill_path(unit, bucket);
            let spill_error = |source| TokenizeError::Spill { path: path.clone(), source };
            let mut reader = spill::Reader::open(&path).map_err(spill_error)?;
            while let Some(r) = reader.read_record().map_err(spill_error)? {
                if options.config.shuffle_seed.is_some() {
                    records.push(r);
                } else {
                    add(r).map_err(shard_error)?;
                }
            }
        }
        records.par_sort_unstable_by_key(|r| (r.key, r.unit, r.seq));
        for r in records {
            add(r).map_err(shard_error)?;
        }
    }
    let mut shards = train.finish().map_err(shard_error)?;
    shards.extend(validation.finish().map_err(shard_error)?);
    Ok(shards)
}

/// Everything the encoding pass needs for a unit, built once.
struct Spiller<'a> {
    plan: &'a Plan,
    read: Arc<ReadOptions>,
    encoder: &'a Encoder,
    options: &'a TokenizeOptions,
    layout: &'a Layout,
    buckets: usize,
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

impl Spiller<'_> {
    /// Encodes a unit's documents into its spill files, one per bucket,
    /// published together.
    fn unit(&self, unit: &Unit, progress: &mut UnitProgress) -> Result<TokenStats, TokenizeError> {
        let config = &self.options.config;
        let index = unit.index;
        let paths: Vec<PathBuf> = (0..self.buckets).map(|b| self.layout.spill_path(index, b)).collect();
        let spill_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TokenizeError::Spill { path, source }
        };
        let mut writers = paths
            .iter()
            .map(|p| spill::Writer::create(&atomic::temp_path(p)).map_err(spill_error(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stats = TokenStats::default();
        let mut batches = UnitBatches::new(self.plan, vec![index], self.read.clone());
        let mut seq = 0u64;
        let bucket_shift = self.buckets.trailing_zeros();
        while let Some((_, docs)) = batches.next_batch() {
            let t = Instant::now();
            let encoded: Vec<Result<Vec<Encoded>, (&str, String)>> =
                docs.par_iter().map(|d| self.encoder.encode_doc(d)).collect();
            stats.encode_seconds += t.elapsed().as_secs_f64();
            stats.input_docs += docs.len() as u64;
            progress.docs(docs.len() as u64);
            progress.read_to(batches.bytes_read());
            for (doc, result) in docs.iter().zip(encoded) {
                let sequences = match result {
                    Ok(r) => r,
                    Err((kind, e)) => {
                        stats.errors.add(kind, 1, || format!("document {:?}: {e}", doc.id));
                        continue;
                    }
                };
                if sequences.iter().any(|e| e.text_tokens == 0) {
                    stats.empty_text_docs += 1;
                }
                if sequences.iter().any(|e| e.tokens.is_empty()) {
                    stats.skipped_empty_docs += 1;
                    continue;
                }
                let trained: Vec<u64> =
                    sequences.iter().map(|e| e.mask.iter().filter(|&&m| m == 1).count() as u64).collect();
                if self.encoder.chat.is_some() && trained.contains(&0) {
                    stats.skipped_untrained_docs += 1;
                    continue;
                }
                stats.trained_tokens += trained.iter().sum::<u64>();
                let seed = config.shuffle_seed.unwrap_or(0);
                let split = if config.validation_fraction > 0.0
                    && (xxh3_64_with_seed(doc.id.as_bytes(), seed ^ 0x7661_6c69_6461_7465) as f64)
                        < config.validation_fraction * u64::MAX as f64
                {
                    Split::Validation
                } else {
                    Split::Train
                };
                let key = match config.shuffle_seed {
                    Some(seed) => xxh3_64_with_seed(doc.id.as_bytes(), seed),
                    None => 0,
                };
                let bucket = if self.buckets > 1 { (key >> (64 - bucket_shift)) as usize } else { 0 };
                stats.written_docs += 1;
                let pair = sequences.len() == 2;
                stats.pairs += u64::from(pair);
                let metadata: Vec<Option<String>> = config.metadata.iter().map(|f| metadata_value(doc, f)).collect();
                for (half, Encoded { tokens, mask, chars, .. }) in sequences.into_iter().enumerate() {
                    stats.tokens += tokens.len() as u64;
                    stats.text_chars += chars;
                    stats.count_tokens(tokens.len(), 1);
                    // The halves of a pair share key and split and stay adjacent, chosen first.
                    let (id, pair) = match (pair, half) {
                        (false, _) => (doc.id.clone(), spill::Pair::None),
                        (true, 0) => (format!("{}/chosen", doc.id), spill::Pair::First),
                        (true, _) => (format!("{}/rejected", doc.id), spill::Pair::Second),
                    };
                    let record = spill::Record {
                        key,
                        unit: index as u32,
                        seq,
                        split,
                        id,
                        metadata: metadata.clone(),
                        tokens,
                        mask,
                        pair,
                    };
                    seq += 1;
                    writers[bucket].write(&record).map_err(spill_error(&paths[bucket]))?;
                }
            }
        }
        stats.input_docs += batches.errors.docs;
        stats.errors.merge(&batches.errors);
        for (w, p) in writers.into_iter().zip(&paths) {
            w.finish().map_err(spill_error(p))?;
        }
        atomic::publish(&paths)?;
        Ok(stats)
    }
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
