//! The pipeline file (`pipeline.toml`): input, ordered steps, output, run
//! options. Parsing refuses unknown keys and bad values before any work
//! starts, and every error names the TOML path of the problem
//! (`step[1].min_chars: ...`), because a typo found after an hour of
//! processing costs an hour.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::registry;
pub use crate::io::format::{InputFormat, OutputFormat};
use crate::io::write::{REJECTED_REASON, REJECTED_STEP};
use crate::runtime::options::BadValue;
use crate::runtime::pool::MAX_THREADS;
pub use crate::tokenize::config::{TokenFormat, TokenizeConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{file}: {key}: {message}")]
    Invalid { file: String, key: String, message: String },
}

/// A pipeline file after validation: what `curate run` executes.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub input: InputConfig,
    pub steps: Vec<StepSpec>,
    pub output: OutputConfig,
    pub run: RunConfig,
    /// Tokenize the kept documents once every task is done: the last step.
    pub tokenize: Option<TokenizeConfig>,
}

/// One step as written in the file, validated against the registry.
#[derive(Debug, Clone, Serialize)]
pub struct StepSpec {
    /// Name in stats and in the rejected output; defaults to the type.
    pub name: String,
    pub kind: String,
    pub mode: StepMode,
    /// The step's own options, without `type` and `name`.
    pub options: toml::Table,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// A file, a folder (walked recursively) or a glob.
    pub path: String,
    /// `jsonl` or `parquet`; by default each file's extension decides.
    #[serde(default)]
    pub format: Option<InputFormat>,
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Documents per batch, the unit of parallel work inside a file.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// A batch is also cut when its documents reach this many bytes, so that
    /// memory stays bounded when documents are large.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: ByteSize,
    /// Plain JSON Lines files are split into byte ranges of this size, so that
    /// one huge file is shared among threads and tasks.
    #[serde(default = "default_split_bytes")]
    pub split_bytes: ByteSize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output folder. Shards, `stats.json` and resume state go here.
    pub path: String,
    #[serde(default)]
    pub format: OutputFormat,
    /// A new shard is started once the current one reaches this size.
    #[serde(default = "default_shard_bytes")]
    pub shard_bytes: ByteSize,
    /// Parquet: most rows per row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Parquet: a row group is also closed at this size (in memory, before
    /// compression), which bounds the writer's memory for large documents.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: ByteSize,
    /// zstd level for Parquet pages and JSON Lines shards.
    #[serde(default = "default_compression_level")]
    pub compression_level: i32,
    /// Also write dropped documents, with the step and reason, to `rejected/`.
    #[serde(default)]
    pub rejected: bool,
    /// Write kept documents into one subfolder per value of this field
    /// (`language` gives `en/`, `fr/`, ..., as FineWeb is split); documents
    /// without the field go to `unknown/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub on_error: OnError,
    /// Worker threads; by default one per core.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// What a bad document does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Count it in the stats with its location and go on.
    #[default]
    Skip,
    /// Stop the run with a message naming the file and line or row.
    Fail,
}

fn default_text_field() -> String {
    "text".into()
}
fn default_id_field() -> String {
    "id".into()
}
fn default_batch_size() -> usize {
    1000
}
fn default_batch_bytes() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_split_bytes() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_shard_bytes() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_row_group_rows() -> usize {
    10_000
}
fn default_row_group_bytes() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_compression_level() -> i32 {
    3
}

/// What a step does with its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    /// Drop documents the step rejects (with the reason in stats and the
    /// rejected output); a rewriting step rewrites.
    Filter,
    /// Keep every document unchanged and add the verdict (`keep` or the
    /// reason) as a field named after the step, and each signal as
    /// `<step>.<signal>`: for tuning thresholds on real data.
    Annotate,
}

impl StepMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StepMode::Filter => "filter",
            StepMode::Annotate => "annotate",
        }
    }
}

/// A size in bytes, written as an integer or as a string with a unit
/// (`"64MiB"`, `"1GB"`, `"512k"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

/// Why a size does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    #[error("{0:?} is not a size such as \"64MiB\"")]
    NotASize(String),
    #[error("unknown size unit {unit:?} in {size:?}")]
    UnknownUnit { unit: String, size: String },
    #[error("{0:?} is too large")]
    TooLarge(String),
}

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, BadSize> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.replace('_', "").parse().map_err(|_| BadSize::NotASize(s.into()))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => return Err(BadSize::UnknownUnit { unit: other.into(), size: s.into() }),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| BadSize::TooLarge(s.into()))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes, as an integer or a string such as \"64MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The file as written, before the steps are checked against the registry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    input: InputConfig,
    #[serde(default)]
    step: Vec<toml::Table>,
    output: OutputConfig,
    #[serde(default)]
    run: RunConfig,
    #[serde(default)]
    tokenize: Option<TokenizeConfig>,
}

impl Pipeline {
    pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Pipeline::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a pipeline; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Pipeline, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { file: file.to_owned(), key, message };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| invalid(toml_location(text, &e), e.message().to_owned()))?;
        let raw: RawPipeline = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            invalid(if path == "." { "(top level)".into() } else { path }, e.into_inner().message().to_owned())
        })?;
        let mut steps = Vec::with_capacity(raw.step.len());
        for (i, mut table) in raw.step.into_iter().enumerate() {
            let at = |key: &str| format!("step[{i}]{}{key}", if key.is_empty() { "" } else { "." });
            let kind = match table.remove("type") {
                Some(toml::Value::String(kind)) => kind,
                Some(_) => return Err(invalid(at("type"), "must be a string".into())),
                None => {
                    return Err(invalid(at(""), format!("missing `type`; known steps: {}", registry::known_types())))
                }
            };
            let name = match table.remove("name") {
                Some(toml::Value::String(name)) if !name.is_empty() => name,
                Some(_) => return Err(invalid(at("name"), "must be a non-empty string".into())),
                None => kind.clone(),
            };
            let mode = match table.remove("mode") {
                None => StepMode::Filter,
                Some(toml::Value::String(m)) if m == "filter" => StepMode::Filter,
                Some(toml::Value::String(m)) if m == "annotate" => StepMode::Annotate,
                Some(other) => return Err(invalid(at("mode"), format!("{other} is not \"filter\" or \"annotate\""))),
            };
            if let Some(j) = steps.iter().position(|s: &StepSpec| s.name == name) {
                return Err(invalid(
                    at("name"),
                    format!("step name {name:?} is already used by step[{j}]; give each step its own `name`"),
                ));
            }
            // Checked, not built: building reads the files a step names (word
            // lists, models, removal lists), which the executor does once.
            registry::check(&kind, &table).map_err(|e| {
                let key = e.key.as_deref().map_or_else(|| at(""), at);
                invalid(key, e.kind.to_string())
            })?;
            steps.push(StepSpec { name, kind, mode, options: table });
        }
        let pipeline = Pipeline { input: raw.input, steps, output: raw.output, run: raw.run, tokenize: raw.tokenize };
        pipeline.validate().map_err(|e| invalid(e.key, e.message))?;
        Ok(pipeline)
    }

    /// Checks of values that serde's types cannot express.
    pub fn validate(&self) -> Result<(), BadValue> {
        let positive = |v: u64, key: &'static str| {
            if v == 0 {
                Err(BadValue::new(key, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        let non_empty = |v: &str, key: &'static str| {
            if v.is_empty() {
                Err(BadValue::new(key, "must not be empty"))
            } else {
                Ok(())
            }
        };
        non_empty(&self.input.path, "input.path")?;
        non_empty(&self.output.path, "output.path")?;
        non_empty(&self.input.text_field, "input.text_field")?;
        non_empty(&self.input.id_field, "input.id_field")?;
        positive(self.input.batch_size as u64, "input.batch_size")?;
        positive(self.input.batch_bytes.0, "input.batch_bytes")?;
        positive(self.input.split_bytes.0, "input.split_bytes")?;
        positive(self.output.shard_bytes.0, "output.shard_bytes")?;
        positive(self.output.row_group_rows as u64, "output.row_group_rows")?;
        positive(self.output.row_group_bytes.0, "output.row_group_bytes")?;
        if !(1..=22).contains(&self.output.compression_level) {
            return Err(BadValue::new(
                "output.compression_level",
                format!("{} is not a zstd level (1 to 22)", self.output.compression_level),
            ));
        }
        if self.run.threads == Some(0) {
            return Err(BadValue::new("run.threads", "must be at least 1 (leave it out for one per core)"));
        }
        if let Some(n) = self.run.threads.filter(|&n| n > MAX_THREADS) {
            return Err(BadValue::new(
                "run.threads",
                format!("{n} is more than {MAX_THREADS} (the most curate starts)"),
            ));
        }
        if let Some(t) = &self.tokenize {
            t.validate()?;
            if t.chat {
                // A pipeline's steps judge text; conversations go straight to tokens.
                return Err(BadValue::new(
                    "tokenize.chat",
                    "a pipeline's steps read text, not conversations: tokenize chat data with `curate tokenize --chat`",
                ));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            if let (StepMode::Annotate, Some(taken)) = (step.mode, self.reserved_field(&step.name)) {
                return Err(BadValue::new(
                    format!("step[{i}].name"),
                    format!(
                        "{:?} is {taken}; an annotating step adds a field of its own name, so give it another `name`",
                        step.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What a field of this name already is in every output document, if
    /// anything: the text, the id, or a field of the rejected output.
    pub fn reserved_field(&self, name: &str) -> Option<&'static str> {
        if name == self.input.text_field {
            Some("the input's text field")
        } else if name == self.input.id_field {
            Some("the input's id field")
        } else if self.output.rejected && (name == REJECTED_STEP || name == REJECTED_REASON) {
            Some("a field of the rejected output")
        } else {
            None
        }
    }
}

/// `line L, column C` of a TOML syntax error.
fn toml_location(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}")
        }
        None => "(syntax)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[input]\npath = \"in\"\n[output]\npath = \"out\"\n";

    fn error(text: &str) -> String {
        Pipeline::parse(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_a_minimal_pipeline() {
        let p = Pipeline::parse(MINIMAL, "p.toml").unwrap();
        assert_eq!(p.input.text_field, "text");
        assert_eq!(p.input.id_field, "id");
        assert_eq!(p.output.format, OutputFormat::Parquet);
        assert_eq!(p.run.on_error, OnError::Skip);
        assert!(p.steps.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        assert_eq!(
            error(&format!("{MINIMAL}[run]\nthreds = 2\n")),
            "p.toml: run.threds: unknown field `threds`, expected `on_error` or `threads`"
        );
        assert!(error("[input]\npath = \"in\"\nbatchsize = 3\n[output]\npath = \"o\"\n")
            .starts_with("p.toml: input.batchsize: unknown field `batchsize`"));
        assert!(error(&format!("{MINIMAL}[extra]\n")).starts_with("p.toml: extra: unknown field `extra`"));
    }

    #[test]
    fn bad_values_name_their_path() {
        assert_eq!(
            error(&format!("{MINIMAL}[run]\non_error = \"ignore\"\n")),
            "p.toml: run.on_error: unknown variant `ignore`, expected `skip` or `fail`"
        );
        assert_eq!(
            error("[input]\npath = \"in\"\nbatch_bytes = \"12 parsecs\"\n[output]\npath = \"o\"\n"),
            "p.toml: input.batch_bytes: unknown size unit \"parsecs\" in \"12 parsecs\""
        );
        assert_eq!(
            error("[input]\npath = \"in\"\nbatch_size = 0\n[output]\npath = \"o\"\n"),
            "p.toml: input.batch_size: must be greater than 0"
        );
    }

    #[test]
    fn steps_are_checked_against_the_registry() {
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"lenght\"\n")),
            "p.toml: step[0].type: unknown step type \"lenght\"; known steps: length, field_value, gopher_quality, gopher_repetition, c4_quality, fineweb_quality, word_list, html_extract, url_filter, pii, language, classifier, dedup, line_dedup, decontaminate, perplexity"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nmin_char = 3\n")),
            "p.toml: step[0].min_char: unknown field `min_char`, expected one of `min_chars`, `max_chars`, `min_bytes`, `max_bytes`"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nmin_chars = \"many\"\n")),
            "p.toml: step[0].min_chars: invalid type: string \"many\", expected u64"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nmin_chars = 9\nmax_chars = 2\n")),
            "p.toml: step[0]: min_chars (9) is greater than max_chars (2)"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"length\"\n[[step]]\ntype = \"length\"\n")),
            "p.toml: step[1].name: step name \"length\" is already used by step[0]; give each step its own `name`"
        );
    }

    #[test]
    fn a_tokenize_table_is_checked_too() {
        let p = Pipeline::parse(&format!("{MINIMAL}[tokenize]\ntokenizer = \"t.json\"\n"), "p.toml").unwrap();
        let t = p.tokenize.unwrap();
        assert_eq!((t.formats.len(), t.eos, t.shard_tokens), (2, true, 1_000_000_000));
        assert_eq!(
            error(&format!("{MINIMAL}[tokenize]\ntokenizer = \"t.json\"\nvalidation_fraction = 2.0\n")),
            "p.toml: tokenize.validation_fraction: 2 is not between 0 and 1"
        );
        assert!(error(&format!("{MINIMAL}[tokenize]\ntokenizer = \"t\"\nformats = [\"ds\"]\n"))
            .starts_with("p.toml: tokenize.formats[0]: unknown variant `ds`"));
        assert!(error(&format!("{MINIMAL}[tokenize]\ntokenizer = \"t\"\nchat = true\n"))
            .starts_with("p.toml: tokenize.chat: a pipeline's steps read text"));
    }

    /// See: issue 13, defect 4.
    #[test]
    fn r13_an_annotating_step_may_not_take_the_name_of_the_text_or_the_id() {
        let annotate =
            |name: &str| format!("{MINIMAL}[[step]]\ntype = \"length\"\nname = \"{name}\"\nmode = \"annotate\"\n");
        assert_eq!(
            error(&annotate("text")),
            "p.toml: step[0].name: \"text\" is the input's text field; an annotating step adds a field of its own \
             name, so give it another `name`"
        );
        assert!(error(&annotate("id")).contains("is the input's id field"));
        let rejected = annotate("rejected_reason").replace("path = \"out\"\n", "path = \"out\"\nrejected = true\n");
        assert!(error(&rejected).contains("is a field of the rejected output"));
        // Filtering steps add no field of their name.
        Pipeline::parse(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nname = \"text\"\n"), "p.toml").unwrap();
    }

    #[test]
    fn a_step_mode_is_filter_or_annotate() {
        let p =
            Pipeline::parse(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nmode = \"annotate\"\n"), "p.toml").unwrap();
        assert_eq!(p.steps[0].mode, StepMode::Annotate);
        assert_eq!(
            error(&format!("{MINIMAL}[[step]]\ntype = \"length\"\nmode = \"tag\"\n")),
            "p.toml: step[0].mode: \"tag\" is not \"filter\" or \"annotate\""
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        assert!(
            error("[input]\npath = \n").starts_with("p.toml: line 2, column 8: "),
            "{}",
            error("[input]\npath = \n")
        );
    }

    #[test]
    fn byte_sizes_accept_units() {
        assert_eq!(ByteSize::parse("64MiB").unwrap(), ByteSize(64 << 20));
        assert_eq!(ByteSize::parse("1_000").unwrap(), ByteSize(1000));
        assert_eq!(ByteSize::parse("2 GB").unwrap(), ByteSize(2_000_000_000));
        assert!(ByteSize::parse("MiB").is_err());
    }
}
