//! Step types by name: the table that turns a `[[step]]` in the pipeline
//! file into a running [`Step`]. Adding a step is one entry here.

use serde::de::DeserializeOwned;

use curate_filters::{
    C4QualityConfig, FieldValueFilterConfig, FilterConfig, FineWebQualityConfig, GopherQualityConfig,
    GopherRepetitionConfig, LanguageConfig, LengthFilterConfig, PerplexityConfig, PiiConfig, WordListConfig,
};

use super::step::{FilterStep, Step};

pub struct StepType {
    pub name: &'static str,
    pub summary: &'static str,
    build: fn(&toml::Table) -> Result<Box<dyn Step>, BuildError>,
}

/// Why a step's options were refused: `path` is relative to the step's table.
#[derive(Debug)]
pub struct BuildError {
    pub path: Option<String>,
    pub message: String,
}

pub const STEP_TYPES: &[StepType] = &[
    StepType {
        name: "length",
        summary: "drop documents outside character or byte bounds",
        build: filter_step::<LengthFilterConfig>,
    },
    StepType {
        name: "field_value",
        summary: "keep or drop documents by the value of a metadata field",
        build: filter_step::<FieldValueFilterConfig>,
    },
    StepType {
        name: "gopher_quality",
        summary: "Gopher's quality rules (word counts and lengths, symbols, bullets, stop words), as datatrove",
        build: filter_step::<GopherQualityConfig>,
    },
    StepType {
        name: "gopher_repetition",
        summary: "Gopher's repetition rules (duplicated lines, paragraphs and n-grams), as datatrove",
        build: filter_step::<GopherRepetitionConfig>,
    },
    StepType {
        name: "c4_quality",
        summary: "C4's rules: remove lines without end punctuation, short, javascript or policy lines; drop pages with few sentences, lorem ipsum or {",
        build: filter_step::<C4QualityConfig>,
    },
    StepType {
        name: "fineweb_quality",
        summary: "FineWeb's rules: line punctuation, short lines, duplicated characters, list-like pages",
        build: filter_step::<FineWebQualityConfig>,
    },
    StepType {
        name: "word_list",
        summary: "drop documents with words from a list (C4's bad words): per language, on word boundaries",
        build: word_list_step,
    },
    StepType {
        name: "pii",
        summary: "redact e-mails, IPs, phones, card numbers, SSNs, IBANs and secrets (tag, fake value or salted hash)",
        build: filter_step::<PiiConfig>,
    },
    StepType {
        name: "language",
        summary: "identify the language (whatlang), set language and language_score, keep an allow-list",
        build: filter_step::<LanguageConfig>,
    },
    StepType {
        name: "dedup",
        summary: "drop the duplicates `curate dedup clusters` listed (MinHash, SimHash or exact), keeping one of each cluster",
        build: dedup_step,
    },
    StepType {
        name: "line_dedup",
        summary: "remove lines that `curate dedup lines` counted more than max_repeats times over the corpus (CCNet)",
        build: line_dedup_step,
    },
    StepType {
        name: "perplexity",
        summary: "perplexity under an n-gram model (ARPA file), CCNet-style: bounds and head/middle/tail buckets",
        build: perplexity_step,
    },
];

/// A step that runs a filter of `curate-filters`, built from its config.
fn filter_step<C: FilterConfig>(options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    let config: C = options_of(options)?;
    config.validate().map_err(|message| BuildError { path: None, message })?;
    Ok(Box::new(FilterStep::new(config.build())))
}

pub fn known_types() -> String {
    STEP_TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

/// Builds a step of type `kind` from its options (the step's table without
/// `type` and `name`).
pub fn build(kind: &str, options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    match STEP_TYPES.iter().find(|t| t.name == kind) {
        Some(t) => (t.build)(options),
        None => Err(BuildError {
            path: Some("type".into()),
            message: format!("unknown step type {kind:?}; known steps: {}", known_types()),
        }),
    }
}

/// A word list step: `path` (one word or phrase a line) and `paths` (a
/// table of language code to file) are read here, so the filter itself
/// never touches files, and become its inline `words` and `lists`.
fn word_list_step(options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    let mut options = options.clone();
    let read = |value: toml::Value, at: String| -> Result<Vec<toml::Value>, BuildError> {
        let toml::Value::String(path) = value else {
            return Err(BuildError { path: Some(at), message: "must be a file path".into() });
        };
        let text = std::fs::read_to_string(&path).map_err(|e| BuildError {
            path: Some(at.clone()),
            message: format!("cannot read word list {path}: {e}"),
        })?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| toml::Value::String(l.into()))
            .collect())
    };
    if let Some(path) = options.remove("path") {
        let words = read(path, "path".into())?;
        match options.entry("words").or_insert_with(|| toml::Value::Array(Vec::new())) {
            toml::Value::Array(list) => list.extend(words),
            _ => return Err(BuildError { path: Some("words".into()), message: "must be a list of strings".into() }),
        }
    }
    if let Some(paths) = options.remove("paths") {
        let toml::Value::Table(paths) = paths else {
            return Err(BuildError {
                path: Some("paths".into()),
                message: "must be a table of language = \"file\"".into(),
            });
        };
        let mut lists = toml::Table::new();
        for (lang, path) in paths {
            lists.insert(lang.clone(), toml::Value::Array(read(path, format!("paths.{lang}"))?));
        }
        match options.entry("lists").or_insert_with(|| toml::Value::Table(toml::Table::new())) {
            toml::Value::Table(existing) => existing.extend(lists),
            _ => return Err(BuildError { path: Some("lists".into()), message: "must be a table of lists".into() }),
        }
    }
    filter_step::<WordListConfig>(&options)
}

/// A perplexity step: the ARPA file at `path` is read here and handed to
/// the filter as text.
fn perplexity_step(options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    let mut options = options.clone();
    let path = match options.remove("path") {
        Some(toml::Value::String(path)) => path,
        Some(_) => return Err(BuildError { path: Some("path".into()), message: "must be a file path".into() }),
        None => return Err(BuildError { path: None, message: "give the model's ARPA file as `path`".into() }),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError { path: Some("path".into()), message: format!("cannot read model {path}: {e}") })?;
    options.insert("model".into(), toml::Value::String(text));
    filter_step::<PerplexityConfig>(&options).map_err(|e| BuildError { message: format!("{path}: {}", e.message), ..e })
}

fn line_dedup_step(options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    let config = options_of::<crate::dedup::line_step::LineDedupConfig>(options)?;
    let step =
        crate::dedup::line_step::LineDedupStep::new(config).map_err(|message| BuildError { path: None, message })?;
    Ok(Box::new(step))
}

fn dedup_step(options: &toml::Table) -> Result<Box<dyn Step>, BuildError> {
    let config = options_of::<crate::dedup::filter::DedupConfig>(options)?;
    let step = crate::dedup::filter::DedupStep::new(config).map_err(|message| BuildError { path: None, message })?;
    Ok(Box::new(step))
}

fn options_of<T: DeserializeOwned>(options: &toml::Table) -> Result<T, BuildError> {
    serde_path_to_error::deserialize(toml::Value::Table(options.clone())).map_err(|e| {
        let path = e.path().to_string();
        BuildError {
            path: (path != ".").then_some(path),
            message: e.into_inner().to_string().lines().next().unwrap_or_default().to_owned(),
        }
    })
}
