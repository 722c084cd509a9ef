//! What goes wrong in tokenizer training and tokenization, each with the
//! file it concerns, and which way it exits.

use std::path::PathBuf;

use crate::io::atomic::WriteError;
use crate::runtime::options::BadValue;
use crate::runtime::ErrorClass;
use crate::stage::StageError;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Option(#[from] BadValue),
    #[error("cannot read tokenizer {}: {source}", path.display())]
    TokenizerUnreadable { path: PathBuf, source: std::io::Error },
    #[error("{} is not a usable tokenizer.json: {message}", path.display())]
    TokenizerInvalid { path: PathBuf, message: String },
    #[error("{what} token {token:?} is not in the vocabulary of {}", path.display())]
    UnknownToken { path: PathBuf, what: &'static str, token: String },
    #[error("vocab_size {vocab_size} is smaller than the 256 byte tokens plus {special} special tokens")]
    VocabularyTooSmall { vocab_size: usize, special: usize },
    #[error("vocab_size {0} is more than {max} tokens", max = super::train::MAX_VOCAB_SIZE)]
    VocabularyTooLarge(usize),
    #[error("no documents to train on")]
    NoDocuments,
    #[error("training failed: {0}")]
    Training(String),
    /// A spill file of the encoding pass that cannot be written or read back.
    #[error("{}: {source}", path.display())]
    Spill { path: PathBuf, source: std::io::Error },
    #[error("writing shards in {}: {source}", folder.display())]
    Shards { folder: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    FinishedStats { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    ChatTemplate(#[from] super::chat::TemplateError),
    #[error("{pairs} preference pairs (prompt, chosen, rejected) and {others} other records: a token dataset holds one kind")]
    MixedPairs { pairs: u64, others: u64 },
}

impl TokenizeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            TokenizeError::Stage(e) => e.class(),
            TokenizeError::Option(_)
            | TokenizeError::TokenizerUnreadable { .. }
            | TokenizeError::TokenizerInvalid { .. }
            | TokenizeError::UnknownToken { .. }
            | TokenizeError::VocabularyTooSmall { .. }
            | TokenizeError::VocabularyTooLarge(_)
            | TokenizeError::NoDocuments
            | TokenizeError::ChatTemplate(_)
            | TokenizeError::MixedPairs { .. } => ErrorClass::Usage,
            TokenizeError::Training(_)
            | TokenizeError::Spill { .. }
            | TokenizeError::Shards { .. }
            | TokenizeError::FinishedStats { .. }
            | TokenizeError::Write(_) => ErrorClass::Failed,
        }
    }
}
