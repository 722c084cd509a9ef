//! The formats curate reads and writes, as the pipeline file and the input
//! planner name them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Jsonl,
    Parquet,
    /// WARC or WET (Common Crawl's archives).
    Warc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Parquet,
    Jsonl,
}

impl crate::runtime::options::Named for OutputFormat {
    const ALL: &'static [Self] = &[OutputFormat::Parquet, OutputFormat::Jsonl];

    fn name(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Jsonl => "jsonl",
        }
    }
}

/// How an input file's bytes are compressed, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
