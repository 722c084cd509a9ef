//! `manifest.json`: the index of a token dataset.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest's own format version; readers refuse newer ones.
pub const MANIFEST_VERSION: u32 = 1;

/// How wide each token id is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    U16,
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a vocabulary.
    pub fn for_vocab(vocab_size: usize) -> TokenWidth {
        if vocab_size <= 1 << 16 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// xxh3-128 of the `tokenizer.json` bytes, hex: a trainer can check that
    /// it decodes with the tokenizer the data was made with.
    pub hash: String,
    pub vocab_size: usize,
    pub eos_id: Option<u32>,
    pub bos_id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub split: Split,
    /// File stem, relative to the manifest: `train-00000` names
    /// `train-00000.parquet`, `train-00000.bin` and `train-00000.idx`.
    pub name: String,
    pub docs: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub tokenizer: TokenizerInfo,
    pub token_width: TokenWidth,
    /// Formats present for every shard: `"parquet"`, `"megatron"`.
    pub formats: Vec<String>,
    /// The shuffle seed, or `None` when documents are in input order.
    pub shuffle_seed: Option<u64>,
    /// Every shard carries a per-token loss mask (chat data): the Parquet
    /// `loss_mask` column and, beside Megatron's files, `NAME.mask.bin`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loss_mask: bool,
    /// Preference pairs (DPO): the documents go in twos, chosen then
    /// rejected, and a shard never ends between the two.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pairs: bool,
    pub shards: Vec<ShardInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a token manifest: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("{path}: manifest version {found} is newer than this curate understands ({MANIFEST_VERSION})")]
    Version { path: String, found: u32 },
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Io { path: p.clone(), source })?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse { path: p.clone(), source })?;
        if manifest.version > MANIFEST_VERSION {
            return Err(ManifestError::Version { path: p, found: manifest.version });
        }
        Ok(manifest)
    }

    pub fn shards(&self, split: Split) -> impl Iterator<Item = &ShardInfo> {
        self.shards.iter().filter(move |s| s.split == split)
    }

    pub fn tokens(&self, split: Split) -> u64 {
        self.shards(split).map(|s| s.tokens).sum()
    }

    pub fn docs(&self, split: Split) -> u64 {
        self.shards(split).map(|s| s.docs).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_follows_the_largest_id() {
        assert_eq!(TokenWidth::for_vocab(50257), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab(65536), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab(65537), TokenWidth::U32);
    }

    #[test]
    fn a_newer_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let manifest = Manifest {
            version: MANIFEST_VERSION + 1,
            tokenizer: TokenizerInfo { hash: "h".into(), vocab_size: 10, eos_id: Some(0), bos_id: None },
            token_width: TokenWidth::U16,
            formats: vec!["megatron".into()],
            shuffle_seed: None,
            loss_mask: false,
            pairs: false,
            shards: vec![],
        };
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert!(matches!(Manifest::load(&path), Err(ManifestError::Version { found: 2, .. })));
        std::fs::write(&path, b"{}").unwrap();
        assert!(Manifest::load(&path).unwrap_err().to_string().contains("not a token manifest"));
    }
}
