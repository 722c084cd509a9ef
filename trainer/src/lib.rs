//! curate's trainer: GPT-2 and LLaMA models on libtorch (through tch),
//! trained on the token shards `curate tokenize` writes.
//!
//! The pieces are kept apart so that what comes next (data-parallel
//! training, SFT, DPO, LoRA, Hugging Face export) slots in without a
//! rewrite: the model ([`model`]) knows nothing of data or optimizers, the
//! loader ([`data`]) nothing of tensors beyond handing out token windows,
//! the optimizer ([`optim`]) nothing of models, and the loop ([`train`])
//! wires them together with [`precision`], [`step`] and [`checkpoint`].
//!
//! Data-parallel training ([`distributed`]) runs the same loop on every
//! rank over PyTorch's c10d; [`updater`] hides whether the optimizer state
//! is whole or sharded.
//!
//! The trainer reads token shards through `curate-shards` only; it never
//! depends on the curation engine.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distributed;
pub mod dpo;
pub mod eval;
pub mod generate;
pub mod gradients;
pub mod hooks;
pub mod model;
pub mod optim;
pub mod packing;
pub mod precision;
pub mod pretrained;
pub mod step;
pub mod train;
pub mod updater;
