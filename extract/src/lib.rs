//! HTML to text for curate: the `html_extract` step ([`HtmlExtract`]).
//!
//! A crate of its own because its HTML parser and extraction heuristics are
//! a heavy build that neither the filters nor the trainer need. The step is
//! a [`curate_filters::Filter`], so the engine runs it as it runs every
//! filter.

mod html_extract;

pub use html_extract::{HtmlExtract, HtmlExtractConfig, Mode};
