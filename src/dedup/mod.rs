//! Deduplication. This release has its first piece: datatrove-compatible
//! MinHash signatures ([`minhash`]) over datatrove's text normalisation
//! ([`normalize`]). The multi-stage pipeline (signatures → buckets →
//! clusters → filter), exact, SimHash and line-level dedup come next.

pub mod minhash;
pub mod mt19937;
pub mod normalize;
pub mod sigfile;
pub mod signatures;
