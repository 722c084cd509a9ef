//! What tokenization makes: `[tokenize]` in a pipeline file, and the flags
//! of `curate tokenize`.

use serde::{Deserialize, Serialize};

pub use super::chat::TrainOn;
use crate::runtime::options::{BadValue, Named};

/// Token shards of the kept documents: `[tokenize]` in a pipeline, and the
/// options of `curate tokenize`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// A `tokenizer.json`.
    pub tokenizer: String,
    /// Output folder of the shards; in a pipeline, by default `tokens/`
    /// inside the output folder.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default = "default_token_formats")]
    pub formats: Vec<TokenFormat>,
    /// A new shard once the current one holds this many tokens.
    #[serde(default = "default_shard_tokens")]
    pub shard_tokens: u64,
    /// Shuffle documents with this seed; by default they keep input order.
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// Fraction of documents held out as the validation split.
    #[serde(default)]
    pub validation_fraction: f64,
    /// Append `eos_token` to every document.
    #[serde(default = "yes")]
    pub eos: bool,
    #[serde(default = "default_eos_token")]
    pub eos_token: String,
    /// Put this token before every document.
    #[serde(default)]
    pub bos_token: Option<String>,
    /// Fields carried into the Parquet shards, as strings.
    #[serde(default)]
    pub metadata: Vec<String>,
    /// Records are conversations: `messages` (or `prompt` and `completion`)
    /// rendered with the chat template, and shards carry a loss mask. The
    /// template's own tokens delimit the turns: `eos` and `bos_token` apply
    /// only to plain-text prompt/completion records.
    #[serde(default)]
    pub chat: bool,
    /// A Jinja chat template file, instead of the tokenizer's own (the
    /// `chat_template` of the tokenizer_config.json beside tokenizer.json).
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Which tokens of a conversation the loss counts: "assistant" turns
    /// (default), the last one ("completion"), or "all".
    #[serde(default)]
    pub train_on: TrainOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    Parquet,
    Megatron,
    /// datatrove's `.ds` files, which nanotron reads.
    Datatrove,
}

impl Named for TokenFormat {
    const ALL: &'static [Self] = &[TokenFormat::Parquet, TokenFormat::Megatron, TokenFormat::Datatrove];

    fn name(self) -> &'static str {
        match self {
            TokenFormat::Parquet => "parquet",
            TokenFormat::Megatron => "megatron",
            TokenFormat::Datatrove => "datatrove",
        }
    }
}

fn default_token_formats() -> Vec<TokenFormat> {
    vec![TokenFormat::Parquet, TokenFormat::Megatron]
}
fn default_shard_tokens() -> u64 {
    1_000_000_000
}
fn default_eos_token() -> String {
    "<|endoftext|>".into()
}
fn yes() -> bool {
    true
}

impl TokenizeConfig {
    /// Checks of values that serde's types cannot express; keys are named
    /// as in a pipeline file (`tokenize.shard_tokens`).
    pub fn validate(&self) -> Result<(), BadValue> {
        if self.formats.is_empty() {
            return Err(BadValue::new(
                "tokenize.formats",
                "name at least one of \"parquet\", \"megatron\", \"datatrove\"",
            ));
        }
        if self.chat && self.formats.contains(&TokenFormat::Datatrove) {
            return Err(BadValue::new(
                "tokenize.formats",
                "datatrove's .ds files have no place for a loss mask: use \"parquet\" or \"megatron\" with chat",
            ));
        }
        if !self.chat && (self.chat_template.is_some() || self.train_on != TrainOn::Assistant) {
            return Err(BadValue::new(
                "tokenize.chat",
                "chat_template and train_on apply to chat data: set chat = true",
            ));
        }
        if self.shard_tokens == 0 {
            return Err(BadValue::new("tokenize.shard_tokens", "must be greater than 0"));
        }
        if !(0.0..=1.0).contains(&self.validation_fraction) {
            return Err(BadValue::new(
                "tokenize.validation_fraction",
                format!("{} is not between 0 and 1", self.validation_fraction),
            ));
        }
        Ok(())
    }

    /// The end-of-text token, when one is appended.
    pub fn eos_token(&self) -> Option<String> {
        self.eos.then(|| self.eos_token.clone())
    }
}
