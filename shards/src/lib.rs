//! Token shards: what `curate tokenize` writes and the trainer reads.
//!
//! This crate is the contract between curation and training, so it depends
//! on neither side: no Arrow, no tokenizer, no libtorch. It defines
//!
//! - the [`Manifest`] (`manifest.json`) that lists a token dataset's shards,
//!   its tokenizer, token width and counts;
//! - Megatron's `MMapIndexedDataset` files (`.bin` tokens, `.idx` index):
//!   [`megatron::Writer`] and [`megatron::Reader`];
//! - datatrove's `.ds`, `.ds.index` and `.ds.metadata` files, which
//!   nanotron reads: [`datatrove::Writer`];
//! - the tokenized Parquet schema's column names ([`parquet_columns`]),
//!   whose reading and writing are left to the crates that have Arrow;
//! - the loss mask of chat data ([`loss_mask`]): a Parquet column, and a
//!   `.mask.bin` file beside Megatron's `.bin`.
//!
//! A shard is one document per sequence; every format of a shard holds the
//! same documents in the same order.

pub mod datatrove;
pub mod loss_mask;
pub mod manifest;
pub mod megatron;

pub use manifest::{Manifest, ShardInfo, Split, TokenWidth, TokenizerInfo};

/// Column names of tokenized Parquet shards.
pub mod parquet_columns {
    /// The document's id (string).
    pub const ID: &str = "id";
    /// `list<uint16>` or `list<uint32>`, as the manifest's token width says.
    pub const TOKENS: &str = "tokens";
    /// `uint32`: the length of `tokens`.
    pub const NUM_TOKENS: &str = "num_tokens";
    /// `list<uint8>`, present when the manifest says `loss_mask`: 1 for a
    /// token the model is trained to predict, 0 for one it only reads.
    pub const LOSS_MASK: &str = "loss_mask";
}
