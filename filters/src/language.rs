//! Language identification, with whatlang (69 languages, trigram profiles
//! per script; no model file) or a fastText model (lid.176, GlotLID, or one
//! of your own): sets `language` (ISO 639-1 where one exists, else the
//! model's code) and `language_score` on every document, as datatrove's
//! language filter does, and keeps only `languages` (an allow-list) detected
//! with at least `min_score` confidence. A fastText label with a script
//! (GlotLID's `eng_Latn`) gives its script to `language_script`.
//!
//! With a fastText model the answer is datatrove's `FastTextLID`: the text
//! with newlines as spaces, every label predicted, the most probable first.
//! datatrove keeps a document when some allowed language scores above its
//! threshold; under a softmax only the top label can score above 0.5, so
//! for `min_score` ≥ 0.5 that is this filter's rule (top label allowed, and
//! at least `min_score`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;
use whatlang::{Lang, Script};

use crate::fasttext_model::FastTextModel;
use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

/// Which identifier answers.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LanguageModel {
    #[default]
    Whatlang,
    /// A fastText model file, given as `model_path` (the engine reads it).
    Fasttext,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    /// `whatlang` (built in) or `fasttext` (with `model_path`).
    pub model: LanguageModel,
    /// The fastText model file's bytes (the engine fills them from `model_path`).
    #[serde(skip)]
    pub model_bytes: Option<Vec<u8>>,
    /// Languages to keep, as ISO 639-1 (`en`) or 639-3 (`eng`) codes; empty
    /// keeps every language: `language_not_allowed`.
    pub languages: Vec<String>,
    /// Detections less confident than this drop: `language_low_confidence`.
    pub min_score: f64,
    /// Metadata field for the language code.
    pub language_field: String,
    /// Metadata field for the confidence.
    pub score_field: String,
    /// Metadata field for the script of a fastText label that has one
    /// (`Latn` of `eng_Latn`; null otherwise). Not written with whatlang.
    pub script_field: String,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            model: LanguageModel::Whatlang,
            model_bytes: None,
            languages: Vec::new(),
            min_score: 0.0,
            language_field: "language".into(),
            score_field: "language_score".into(),
            script_field: "language_script".into(),
        }
    }
}

impl FilterConfig for LanguageConfig {
    type Filter = LanguageFilter;

    fn validate(&self) -> Result<(), ConfigError> {
        // A fastText model's languages are known once its file is read (build).
        let whatlang = self.model == LanguageModel::Whatlang;
        if let Some(code) = self.languages.iter().find(|c| whatlang && lang_from_code(c).is_none()) {
            return Err(format!("{code:?} is not a language whatlang detects (give an ISO 639-1 or 639-3 code)").into());
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            // NaN too: it is in no range.
            return Err(format!("min_score {} is not between 0 and 1", self.min_score).into());
        }
        Ok(())
    }

    fn build(mut self) -> Result<LanguageFilter, ConfigError> {
        let detector = match (self.model, self.model_bytes.take()) {
            (LanguageModel::Whatlang, None) => {
                Detector::Whatlang { allowed: self.languages.iter().filter_map(|c| lang_from_code(c)).collect() }
            }
            (LanguageModel::Whatlang, Some(_)) => {
                return Err("a model file is for `model = \"fasttext\"`; whatlang has none".into())
            }
            (LanguageModel::Fasttext, None) => return Err("`model = \"fasttext\"` needs its `model_path`".into()),
            (LanguageModel::Fasttext, Some(bytes)) => {
                let model = FastTextModel::from_bytes(&bytes)?;
                let labels: Vec<(String, Option<String>)> =
                    (0..model.labels().len()).map(|i| code_and_script(model.label_name(i))).collect();
                let mut allowed = vec![self.languages.is_empty(); labels.len()];
                for wanted in &self.languages {
                    let wanted = normalise_code(wanted);
                    let mut found = false;
                    for (i, (code, _)) in labels.iter().enumerate() {
                        if *code == wanted {
                            allowed[i] = true;
                            found = true;
                        }
                    }
                    if !found {
                        return Err(format!("{wanted:?} is not a language of the fastText model").into());
                    }
                }
                Detector::FastText { model: Box::new(model), labels, allowed }
            }
        };
        Ok(LanguageFilter { config: self, detector })
    }
}

pub struct LanguageFilter {
    config: LanguageConfig,
    detector: Detector,
}

enum Detector {
    Whatlang {
        allowed: Vec<Lang>,
    },
    FastText {
        model: Box<FastTextModel>,
        /// Each label's language code and script.
        labels: Vec<(String, Option<String>)>,
        /// Whether each label is in the allow-list (all are when it is empty).
        allowed: Vec<bool>,
    },
}

/// What was detected: the language's code (as written on documents), its
/// script where the model names one, the confidence, and whether the
/// allow-list takes it.
struct Detected<'a> {
    code: &'a str,
    script: Option<&'a str>,
    score: f64,
    allowed: bool,
}

/// ISO 639-3 to 639-1, for the codes that have one.
fn iso639_1_of(code: &str) -> Option<&'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            include_str!("../data/iso639_3_to_1.tsv")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('\t'))
                .collect()
        })
        .get(code)
        .copied()
}

/// A language code as this filter writes it: 639-1 where one exists.
fn normalise_code(code: &str) -> String {
    iso639_1_of(code).unwrap_or(code).to_owned()
}

/// A fastText label's language code and script: `eng_Latn` is `en` in
/// `Latn`; `en` and `als` have no script.
fn code_and_script(label: &str) -> (String, Option<String>) {
    match label.split_once('_') {
        Some((code, script)) if script.len() == 4 && script.chars().all(|c| c.is_ascii_alphabetic()) => {
            (normalise_code(code), Some(script.to_owned()))
        }
        _ => (normalise_code(label), None),
    }
}

/// ISO 639-1 codes of whatlang's languages (those that have one).
fn iso639_1(lang: Lang) -> Option<&'static str> {
    use Lang::*;
    Some(match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
        _ => return None,
    })
}

fn lang_from_code(code: &str) -> Option<Lang> {
    Lang::from_code(code).or_else(|| Lang::all().iter().copied().find(|l| iso639_1(*l) == Some(code)))
}

/// The code written on documents: 639-1 where it exists.
fn code(lang: Lang) -> &'static str {
    iso639_1(lang).unwrap_or(lang.code())
}

/// The whatlang language and confidence of `text`. Han characters alone
/// are Chinese to whatlang, but Japanese text without kana is rare and
/// whatlang's Mandarin profile holds it; text with kana is Japanese.
fn whatlang_detect(text: &str) -> Option<(Lang, f64)> {
    let info = whatlang::detect(text)?;
    let lang = if info.script() == Script::Mandarin && text.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF)) {
        Lang::Jpn
    } else {
        info.lang()
    };
    Some((lang, info.confidence()))
}

impl LanguageFilter {
    fn detect(&self, text: &str) -> Option<Detected<'_>> {
        match &self.detector {
            Detector::Whatlang { allowed } => whatlang_detect(text).map(|(lang, score)| Detected {
                code: code(lang),
                script: None,
                score,
                allowed: allowed.is_empty() || allowed.contains(&lang),
            }),
            Detector::FastText { model, labels, allowed } => {
                let line = text.replace('\n', " ");
                let best = *model.predict(&line, usize::MAX, 0.0).first()?;
                let (code, script) = &labels[best.label];
                Some(Detected {
                    code,
                    script: script.as_deref(),
                    score: f64::from(best.prob),
                    allowed: allowed[best.label],
                })
            }
        }
    }

    fn judge(&self, detected: &Option<Detected<'_>>) -> Verdict {
        let Some(detected) = detected else {
            return Verdict::drop("language_undetected");
        };
        if !detected.allowed {
            return Verdict::drop("language_not_allowed");
        }
        if detected.score < self.config.min_score {
            return Verdict::drop("language_low_confidence");
        }
        Verdict::Keep
    }
}

impl Filter for LanguageFilter {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let detected = self.detect(doc.text);
        if let Measure::Metadata(values) = measure {
            match &detected {
                Some(d) => values.extend([Value::from(d.code), Value::from(d.score)]),
                None => values.extend([Value::Null, Value::Null]),
            }
            if matches!(self.detector, Detector::FastText { .. }) {
                values.push(detected.as_ref().and_then(|d| d.script).map_or(Value::Null, Value::from));
            }
        }
        self.judge(&detected)
    }

    fn metadata_fields(&self) -> Vec<(String, bool)> {
        let mut fields = vec![(self.config.language_field.clone(), false), (self.config.score_field.clone(), true)];
        if matches!(self.detector, Detector::FastText { .. }) {
            fields.push((self.config.script_field.clone(), false));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(languages: &[&str], min_score: f64) -> LanguageFilter {
        let config = LanguageConfig {
            languages: languages.iter().map(|s| s.to_string()).collect(),
            min_score,
            ..Default::default()
        };
        config.validate().unwrap();
        config.build().unwrap()
    }

    const EN: &str =
        "All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience.";
    const FR: &str = "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de raison et de conscience.";
    const JA: &str = "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。";

    #[test]
    fn keeps_allowed_languages_and_writes_codes() {
        let en = filter(&["en"], 0.0);
        assert_eq!(en.filter(&Document::text_only(EN), Measure::Verdict), Verdict::Keep);
        assert_eq!(en.filter(&Document::text_only(FR), Measure::Verdict), Verdict::drop("language_not_allowed"));
        let mut values = Vec::new();
        assert_eq!(filter(&[], 0.0).filter(&Document::text_only(FR), Measure::Metadata(&mut values)), Verdict::Keep);
        assert_eq!(values[0], "fr");
        assert!(values[1].as_f64().unwrap() > 0.5);
    }

    #[test]
    fn japanese_with_kana_is_japanese_and_unknown_text_is_undetected() {
        let mut values = Vec::new();
        filter(&["ja", "eng"], 0.0).filter(&Document::text_only(JA), Measure::Metadata(&mut values));
        assert_eq!(values[0], "ja");
        assert_eq!(
            filter(&[], 0.0).filter(&Document::text_only("12345 !!!"), Measure::Verdict),
            Verdict::drop("language_undetected")
        );
    }

    #[test]
    fn low_confidence_and_bad_codes() {
        assert_eq!(
            filter(&[], 1.0).filter(&Document::text_only("ok so"), Measure::Verdict),
            Verdict::drop("language_low_confidence")
        );
        let bad = LanguageConfig { languages: vec!["xx".into()], ..Default::default() };
        assert_eq!(
            bad.validate().unwrap_err().0,
            "\"xx\" is not a language whatlang detects (give an ISO 639-1 or 639-3 code)"
        );
    }
}
