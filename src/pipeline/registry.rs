//! Step types by name: the table that turns a `[[step]]` of the pipeline
//! file into a running [`Step`]. The only module that knows both the
//! executor's side (the [`Step`] trait) and the step implementations (the
//! filters of `curate-filters`, the dedup steps); adding a step is one
//! entry here.
//!
//! Each entry has two functions. `check` validates the options without
//! reading any file they name (what `curate check`, and the check before
//! `curate run`, call); `build` reads those files and makes the step, once
//! per run.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use curate_filters::{
    C4QualityConfig, ClassifierConfig, FieldValueFilterConfig, FilterConfig, FineWebQualityConfig, GopherQualityConfig,
    GopherRepetitionConfig, LanguageConfig, LengthFilterConfig, PerplexityConfig, PiiConfig, UrlFilterConfig,
    WordListConfig,
};

use curate_extract::HtmlExtractConfig;

use crate::decont::index::{Index, IndexError};
use crate::decont::step::{Decontaminate, DecontaminateConfig};
use crate::dedup::filter::{DedupConfig, DedupStep};
use crate::dedup::line_step::{LineDedupConfig, LineDedupStep};
use crate::dedup::DedupError;
use crate::step::{FilterStep, Step};

pub struct StepType {
    pub name: &'static str,
    pub summary: &'static str,
    check: fn(&toml::Table) -> Result<(), StepError>,
    build: fn(&toml::Table) -> Result<Box<dyn Step>, StepError>,
}

/// Why a step's options were refused; `key` is relative to the step's table.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct StepError {
    pub key: Option<String>,
    pub kind: StepErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum StepErrorKind {
    #[error("unknown step type {name:?}; known steps: {known}")]
    UnknownType { name: String, known: String },
    /// An option that does not deserialise: unknown, or of the wrong type.
    #[error("{0}")]
    Options(String),
    /// A value of the wrong shape for the key.
    #[error("must be {0}")]
    Shape(&'static str),
    #[error("give the model's ARPA file as `path`")]
    NoModel,
    #[error(transparent)]
    Invalid(#[from] curate_filters::ConfigError),
    #[error("cannot read {what} {}: {source}", path.display())]
    Unreadable { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Model { path: PathBuf, source: curate_filters::ConfigError },
    #[error(transparent)]
    Dedup(#[from] DedupError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl StepError {
    fn new(key: Option<&str>, kind: impl Into<StepErrorKind>) -> StepError {
        StepError { key: key.map(str::to_owned), kind: kind.into() }
    }
}

impl From<curate_filters::ConfigError> for StepError {
    fn from(e: curate_filters::ConfigError) -> Self {
        StepError::new(None, e)
    }
}

impl From<DedupError> for StepError {
    fn from(e: DedupError) -> Self {
        StepError::new(None, e)
    }
}

pub const STEP_TYPES: &[StepType] = &[
    StepType {
        name: "length",
        summary: "drop documents outside character or byte bounds",
        check: check_filter::<LengthFilterConfig>,
        build: filter_step::<LengthFilterConfig>,
    },
    StepType {
        name: "field_value",
        summary: "keep or drop documents by the value of a metadata field",
        check: check_filter::<FieldValueFilterConfig>,
        build: filter_step::<FieldValueFilterConfig>,
    },
    StepType {
        name: "gopher_quality",
        summary: "Gopher's quality rules (word counts and lengths, symbols, bullets, stop words), as datatrove",
        check: check_filter::<GopherQualityConfig>,
        build: filter_step::<GopherQualityConfig>,
    },
    StepType {
        name: "gopher_repetition",
        summary: "Gopher's repetition rules (duplicated lines, paragraphs and n-grams), as datatrove",
        check: check_filter::<GopherRepetitionConfig>,
        build: filter_step::<GopherRepetitionConfig>,
    },
    StepType {
        name: "c4_quality",
        summary: "C4's rules: remove lines without end punctuation, short, javascript or policy lines; drop pages with few sentences, lorem ipsum or {",
        check: check_filter::<C4QualityConfig>,
        build: filter_step::<C4QualityConfig>,
    },
    StepType {
        name: "fineweb_quality",
        summary: "FineWeb's rules: line punctuation, short lines, duplicated characters, list-like pages",
        check: check_filter::<FineWebQualityConfig>,
        build: filter_step::<FineWebQualityConfig>,
    },
    StepType {
        name: "word_list",
        summary: "drop documents with words from a list (C4's bad words): per language, on word boundaries",
        check: check_word_list,
        build: word_list_step,
    },
    StepType {
        name: "html_extract",
        summary: "HTML to its main text, as trafilatura extracts it (or all visible text); title and language as fields",
        check: check_filter::<HtmlExtractConfig>,
        build: filter_step::<HtmlExtractConfig>,
    },
    StepType {
        name: "url_filter",
        summary: "drop documents by URL, as datatrove's URLFilter: block-listed domains, hosts and URLs, banned words",
        check: check_url_filter,
        build: url_filter_step,
    },
    StepType {
        name: "pii",
        summary: "redact e-mails, IPs, phones, card numbers, SSNs, IBANs and secrets (tag, fake value or salted hash)",
        check: check_filter::<PiiConfig>,
        build: filter_step::<PiiConfig>,
    },
    StepType {
        name: "language",
        summary: "identify the language (whatlang, or a fastText model such as lid.176 or GlotLID), set language and language_score, keep an allow-list",
        check: check_model_filter::<LanguageConfig>,
        build: model_filter_step::<LanguageConfig>,
    },
    StepType {
        name: "classifier",
        summary: "score documents (or paragraphs, lines) with a fastText classifier, as datatrove's FastTextClassifierFilter: keep or remove by label score",
        check: check_model_filter::<ClassifierConfig>,
        build: model_filter_step::<ClassifierConfig>,
    },
    StepType {
        name: "dedup",
        summary: "drop the duplicates `curate dedup clusters` listed (MinHash, SimHash or exact), keeping one of each cluster",
        check: |options| Ok(options_of::<DedupConfig>(options)?.check()?),
        build: |options| Ok(Box::new(DedupStep::new(options_of(options)?)?)),
    },
    StepType {
        name: "line_dedup",
        summary: "remove lines that `curate dedup lines` counted more than max_repeats times over the corpus (CCNet)",
        check: |options| Ok(options_of::<LineDedupConfig>(options)?.check()?),
        build: |options| Ok(Box::new(LineDedupStep::new(options_of(options)?)?)),
    },
    StepType {
        name: "decontaminate",
        summary: "drop documents holding an n-gram of a benchmark (index from `curate decont index` or datatrove), as datatrove's NGramsDecontFilter; or cut the match out, as GPT-3",
        check: check_decontaminate,
        build: decontaminate_step,
    },
    StepType {
        name: "perplexity",
        summary: "perplexity under an n-gram model (ARPA file), CCNet-style: bounds and head/middle/tail buckets",
        check: check_perplexity,
        build: perplexity_step,
    },
];

pub fn known_types() -> String {
    STEP_TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

fn step_type(kind: &str) -> Result<&'static StepType, StepError> {
    STEP_TYPES.iter().find(|t| t.name == kind).ok_or_else(|| {
        StepError::new(Some("type"), StepErrorKind::UnknownType { name: kind.to_owned(), known: known_types() })
    })
}

/// Checks the options of a step of type `kind` (the step's table without
/// `type`, `name` and `mode`), reading no file they name.
pub fn check(kind: &str, options: &toml::Table) -> Result<(), StepError> {
    (step_type(kind)?.check)(options)
}

/// Builds a step of type `kind` from its options, reading the files they name.
pub fn build(kind: &str, options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    (step_type(kind)?.build)(options)
}

/// The bounds a step of this type and these options puts on its signals
/// (signal, value), defaults filled in: what `curate report` draws on the
/// histograms of annotated signals. Empty for types without such bounds or
/// options that do not parse.
pub fn thresholds(kind: &str, options: &toml::Table) -> Vec<(&'static str, f64)> {
    fn of<C: FilterConfig>(options: &toml::Table) -> Vec<(&'static str, f64)> {
        options_of::<C>(options).map(|c| c.thresholds()).unwrap_or_default()
    }
    match kind {
        "length" => of::<LengthFilterConfig>(options),
        "gopher_quality" => of::<GopherQualityConfig>(options),
        "fineweb_quality" => of::<FineWebQualityConfig>(options),
        _ => Vec::new(),
    }
}

fn check_filter<C: FilterConfig>(options: &toml::Table) -> Result<(), StepError> {
    Ok(options_of::<C>(options)?.validate()?)
}

/// A step that runs a filter of `curate-filters`, built from its config.
fn filter_step<C: FilterConfig>(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let config: C = options_of(options)?;
    config.validate()?;
    Ok(Box::new(FilterStep::new(config.build()?)))
}

/// The path a key names: a string, or an error naming the key.
fn path_at(value: &toml::Value, key: &str) -> Result<PathBuf, StepError> {
    match value {
        toml::Value::String(path) => Ok(PathBuf::from(path)),
        _ => Err(StepError::new(Some(key), StepErrorKind::Shape("a file path"))),
    }
}

/// Refuses a file that cannot be opened, without reading it.
fn readable(path: &Path, what: &'static str, key: &str) -> Result<(), StepError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| StepError::new(Some(key), StepErrorKind::Unreadable { what, path: path.to_owned(), source }))
}

/// A word list step's files: `path` (one word or phrase a line) and
/// `paths` (a table of language code to file), with the key of each.
fn word_list_files(options: &toml::Table) -> Result<Vec<(String, Option<String>, PathBuf)>, StepError> {
    let mut files = Vec::new();
    if let Some(path) = options.get("path") {
        files.push(("path".to_owned(), None, path_at(path, "path")?));
    }
    if let Some(paths) = options.get("paths") {
        let toml::Value::Table(paths) = paths else {
            return Err(StepError::new(Some("paths"), StepErrorKind::Shape("a table of language = \"file\"")));
        };
        for (lang, path) in paths {
            let key = format!("paths.{lang}");
            files.push((key.clone(), Some(lang.clone()), path_at(path, &key)?));
        }
    }
    Ok(files)
}

/// The word list's options without `path` and `paths`, which the filter
/// does not know (it takes its lists inline).
fn without_files(options: &toml::Table) -> toml::Table {
    let mut options = options.clone();
    options.remove("path");
    options.remove("paths");
    options
}

fn check_word_list(options: &toml::Table) -> Result<(), StepError> {
    for (key, _, path) in word_list_files(options)? {
        readable(&path, "word list", &key)?;
    }
    check_filter::<WordListConfig>(&without_files(options))
}

/// A word list step: the files of `path` and `paths` are read here, so the
/// filter itself never touches files, and become its inline `words` and
/// `lists`.
fn word_list_step(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let mut config: WordListConfig = options_of(&without_files(options))?;
    for (key, lang, path) in word_list_files(options)? {
        let text = std::fs::read_to_string(&path).map_err(|source| {
            StepError::new(Some(&key), StepErrorKind::Unreadable { what: "word list", path: path.clone(), source })
        })?;
        let words = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from);
        match lang {
            None => config.words.extend(words),
            Some(lang) => config.lists.entry(lang).or_default().extend(words),
        }
    }
    config.validate()?;
    Ok(Box::new(FilterStep::new(config.build()?)))
}

/// A URL filter's list files: `domains_path`, `urls_path`,
/// `banned_words_path`, `banned_subwords_path`, `soft_banned_words_path`,
/// each adding its lines to the list of the same name.
const URL_LISTS: [&str; 5] = ["domains", "urls", "banned_words", "banned_subwords", "soft_banned_words"];

/// Each list file (the list's name and the path), and the options without them.
type ListFiles = (Vec<(&'static str, PathBuf)>, toml::Table);

fn url_list_files(options: &toml::Table) -> Result<ListFiles, StepError> {
    let mut rest = options.clone();
    let mut files = Vec::new();
    for list in URL_LISTS {
        let key = format!("{list}_path");
        if let Some(value) = rest.remove(&key) {
            files.push((list, path_at(&value, &key)?));
        }
    }
    Ok((files, rest))
}

fn check_url_filter(options: &toml::Table) -> Result<(), StepError> {
    let (files, rest) = url_list_files(options)?;
    for (list, path) in &files {
        readable(path, "URL list", &format!("{list}_path"))?;
    }
    check_filter::<UrlFilterConfig>(&rest)
}

/// A URL filter: its list files are read here, line by line as Python
/// reads a text file (newlines kept, `\r\n` as `\n`), and appended to the
/// inline lists.
fn url_filter_step(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let (files, rest) = url_list_files(options)?;
    let mut config: UrlFilterConfig = options_of(&rest)?;
    for (list, path) in files {
        let key = format!("{list}_path");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            StepError::new(Some(&key), StepErrorKind::Unreadable { what: "URL list", path: path.clone(), source })
        })?;
        let lines = text.replace("\r\n", "\n").split_inclusive('\n').map(String::from).collect::<Vec<_>>();
        let target = match list {
            "domains" => &mut config.domains,
            "urls" => &mut config.urls,
            "banned_words" => &mut config.banned_words,
            "banned_subwords" => &mut config.banned_subwords,
            _ => &mut config.soft_banned_words,
        };
        target.extend(lines);
    }
    config.validate()?;
    Ok(Box::new(FilterStep::new(config.build()?)))
}

/// A filter whose model file is `model_path` (fastText): read here, handed
/// to the filter as bytes.
trait ModelBytes: FilterConfig {
    fn set_model(&mut self, bytes: Vec<u8>);
}

impl ModelBytes for LanguageConfig {
    fn set_model(&mut self, bytes: Vec<u8>) {
        self.model_bytes = Some(bytes);
    }
}

impl ModelBytes for ClassifierConfig {
    fn set_model(&mut self, bytes: Vec<u8>) {
        self.model_bytes = Some(bytes);
    }
}

/// The `model_path` of a step's options, and the options without it.
fn model_path(options: &toml::Table) -> Result<(Option<PathBuf>, toml::Table), StepError> {
    let mut rest = options.clone();
    let path = rest.remove("model_path").map(|value| path_at(&value, "model_path")).transpose()?;
    Ok((path, rest))
}

fn check_model_filter<C: ModelBytes>(options: &toml::Table) -> Result<(), StepError> {
    let (path, rest) = model_path(options)?;
    if let Some(path) = &path {
        readable(path, "model", "model_path")?;
    }
    check_filter::<C>(&rest)
}

fn model_filter_step<C: ModelBytes>(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let (path, rest) = model_path(options)?;
    let mut config: C = options_of(&rest)?;
    config.validate()?;
    let Some(path) = path else {
        return Ok(Box::new(FilterStep::new(config.build()?)));
    };
    let bytes = std::fs::read(&path).map_err(|source| {
        StepError::new(Some("model_path"), StepErrorKind::Unreadable { what: "model", path: path.clone(), source })
    })?;
    config.set_model(bytes);
    let filter = config.build().map_err(|source| StepError::new(None, StepErrorKind::Model { path, source }))?;
    Ok(Box::new(FilterStep::new(filter)))
}

fn check_decontaminate(options: &toml::Table) -> Result<(), StepError> {
    let config: DecontaminateConfig = options_of(options)?;
    std::fs::read_dir(&config.index).map(drop).map_err(|source| {
        StepError::new(
            Some("index"),
            StepErrorKind::Unreadable { what: "index folder", path: config.index.clone(), source },
        )
    })
}

/// A decontamination step: the index is loaded here, once per run.
fn decontaminate_step(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let config: DecontaminateConfig = options_of(options)?;
    let index = Index::load(&config.index).map_err(|e| StepError::new(Some("index"), e))?;
    let step = Decontaminate::new(config, index)?;
    Ok(Box::new(FilterStep::new(step)))
}

/// A perplexity step's model file, and its other options.
fn perplexity_parts(options: &toml::Table) -> Result<(PathBuf, toml::Table), StepError> {
    let mut options = options.clone();
    let path = match options.remove("path") {
        Some(value) => path_at(&value, "path")?,
        None => return Err(StepError::new(None, StepErrorKind::NoModel)),
    };
    Ok((path, options))
}

fn check_perplexity(options: &toml::Table) -> Result<(), StepError> {
    let (path, rest) = perplexity_parts(options)?;
    readable(&path, "model", "path")?;
    check_filter::<PerplexityConfig>(&rest)
}

/// A perplexity step: the ARPA file at `path` is read here and handed to
/// the filter as text.
fn perplexity_step(options: &toml::Table) -> Result<Box<dyn Step>, StepError> {
    let (path, rest) = perplexity_parts(options)?;
    let mut config: PerplexityConfig = options_of(&rest)?;
    config.model = std::fs::read_to_string(&path).map_err(|source| {
        StepError::new(Some("path"), StepErrorKind::Unreadable { what: "model", path: path.clone(), source })
    })?;
    config.validate()?;
    let filter = config.build().map_err(|source| StepError::new(None, StepErrorKind::Model { path, source }))?;
    Ok(Box::new(FilterStep::new(filter)))
}

fn options_of<T: DeserializeOwned>(options: &toml::Table) -> Result<T, StepError> {
    serde_path_to_error::deserialize(toml::Value::Table(options.clone())).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string().lines().next().unwrap_or_default().to_owned();
        StepError { key: (path != ".").then_some(path), kind: StepErrorKind::Options(message) }
    })
}
