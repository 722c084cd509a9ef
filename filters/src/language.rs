//! Language identification with whatlang (69 languages, trigram profiles
//! per script): sets `language` (ISO 639-1 where one exists, else 639-3)
//! and `language_score` on every document, as datatrove's language filter
//! does, and keeps only `languages` (an allow-list) detected with at least
//! `min_score` confidence.

use serde::Deserialize;
use serde_json::Value;
use whatlang::{Lang, Script};

use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    /// Languages to keep, as ISO 639-1 (`en`) or 639-3 (`eng`) codes; empty
    /// keeps every language: `language_not_allowed`.
    pub languages: Vec<String>,
    /// Detections less confident than this drop: `language_low_confidence`.
    pub min_score: f64,
    /// Metadata field for the language code.
    pub language_field: String,
    /// Metadata field for the confidence.
    pub score_field: String,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            languages: Vec::new(),
            min_score: 0.0,
            language_field: "language".into(),
            score_field: "language_score".into(),
        }
    }
}

impl FilterConfig for LanguageConfig {
    type Filter = LanguageFilter;

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(code) = self.languages.iter().find(|c| lang_from_code(c).is_none()) {
            return Err(format!("{code:?} is not a language whatlang detects (give an ISO 639-1 or 639-3 code)").into());
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            // NaN too: it is in no range.
            return Err(format!("min_score {} is not between 0 and 1", self.min_score).into());
        }
        Ok(())
    }

    fn build(self) -> Result<LanguageFilter, ConfigError> {
        let allowed = self.languages.iter().filter_map(|c| lang_from_code(c)).collect();
        Ok(LanguageFilter { config: self, allowed })
    }
}

pub struct LanguageFilter {
    config: LanguageConfig,
    allowed: Vec<Lang>,
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

impl LanguageFilter {
    /// The language and confidence of `text`. Han characters alone are
    /// Chinese to whatlang, but Japanese text without kana is rare and
    /// whatlang's Mandarin profile holds it; text with kana is Japanese.
    fn detect(&self, text: &str) -> Option<(Lang, f64)> {
        let info = whatlang::detect(text)?;
        let lang = if info.script() == Script::Mandarin && text.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF)) {
            Lang::Jpn
        } else {
            info.lang()
        };
        Some((lang, info.confidence()))
    }

    fn judge(&self, detected: Option<(Lang, f64)>) -> Verdict {
        let Some((lang, score)) = detected else {
            return Verdict::drop("language_undetected");
        };
        if !self.allowed.is_empty() && !self.allowed.contains(&lang) {
            return Verdict::drop("language_not_allowed");
        }
        if score < self.config.min_score {
            return Verdict::drop("language_low_confidence");
        }
        Verdict::Keep
    }
}

impl Filter for LanguageFilter {
    fn filter(&self, doc: &Document<'_>, measure: Measure<'_>) -> Verdict {
        let detected = self.detect(doc.text);
        if let Measure::Metadata(values) = measure {
            match detected {
                Some((lang, score)) => values.extend([Value::from(code(lang)), Value::from(score)]),
                None => values.extend([Value::Null, Value::Null]),
            }
        }
        self.judge(detected)
    }

    fn metadata_fields(&self) -> Vec<(String, bool)> {
        vec![(self.config.language_field.clone(), false), (self.config.score_field.clone(), true)]
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
