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
use whatlang::Lang;

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

/// The whatlang language and confidence of `text`, corrected by script
/// rules and by second opinions on pairs whatlang confuses (below).
fn whatlang_detect(text: &str) -> Option<(Lang, f64)> {
    if let Some(lang) = cjk_by_script(text) {
        return Some((lang, 1.0));
    }
    let info = whatlang::detect(text)?;
    let lang = own_letters(text).unwrap_or_else(|| second_opinion(text, info.lang()));
    Some((lang, info.confidence()))
}

/// Letters that only one of whatlang's languages writes. A short Czech
/// text with a Spanish title or English terms is read as Spanish or
/// English; its ř, ů and ě say otherwise.
/// Lower case only: text decoded with the wrong charset (`fÃ¼r`,
/// `nyomtatĂłk`) is full of upper-case Latin letters with marks. Not
/// Polish's ł, which that same mojibake writes (`Ăł` for `ó`), nor
/// Portuguese's ã and õ, which Estonian and Vietnamese write too.
const OWN_LETTERS: &[(Lang, &str)] = &[(Lang::Ces, "řůě"), (Lang::Hun, "őű"), (Lang::Slk, "ĺľŕ")];

/// The language whose own letters the text has at least three of, making
/// at least 1% of its letters (a name or two from another language does
/// not count); `None` when no language or more than one qualifies.
fn own_letters(text: &str) -> Option<Lang> {
    let mut counts = [0usize; OWN_LETTERS.len()];
    let mut letters = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if let Some(i) = OWN_LETTERS.iter().position(|(_, own)| own.contains(c)) {
            counts[i] += 1;
        }
    }
    let mut found = OWN_LETTERS.iter().zip(counts).filter(|&(_, n)| n >= 3 && n * 100 >= letters);
    match (found.next(), found.next()) {
        (Some((&(lang, _), _)), None) => Some(lang),
        _ => None,
    }
}

/// Chinese, Japanese or Korean by script alone. whatlang answers in the
/// script most letters are in, so a short Japanese text full of English
/// names and terms is read as English; but a CJK character stands for
/// about a word, five Latin letters. Measured on short texts
/// (docs/benchmarks.md), CJK characters were at least 29% of the other
/// letters in every Chinese, Japanese and Korean text, and at most 1.1% in
/// any other: at a tenth, the text is CJK. Then hangul makes it Korean and
/// kana Japanese (whichever has more), and Han alone is Chinese (whatlang
/// takes some classical Chinese for Japanese).
fn cjk_by_script(text: &str) -> Option<Lang> {
    let (mut han, mut kana, mut hangul, mut letters) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars() {
        match c as u32 {
            0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => kana += 1,
            0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => hangul += 1,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF => han += 1,
            _ if c.is_alphabetic() => letters += 1,
            _ => {}
        }
    }
    let cjk = han + kana + hangul;
    if cjk < 2 || cjk * 10 < letters {
        return None;
    }
    Some(if hangul > 0 && hangul >= kana {
        Lang::Kor
    } else if kana > 0 {
        Lang::Jpn
    } else {
        Lang::Cmn
    })
}

/// Pairs of close languages whatlang's trigram profiles confuse on short
/// texts, each with what tells them apart: letters one of them lacks, or
/// words one of them spells otherwise. When whatlang answers one of a pair
/// and the text's evidence leans the other way, the other it is; without
/// evidence whatlang's answer stands.
struct Pair {
    a: Lang,
    b: Lang,
    /// Characters only `a` writes, and only `b`.
    a_letters: &'static str,
    b_letters: &'static str,
    /// Words (lower case) `a` spells so and `b` otherwise, and the reverse.
    a_words: &'static [&'static str],
    b_words: &'static [&'static str],
    /// Letter pairs inside words that only `a` writes (Dutch `ij`), and only `b`.
    a_digraphs: &'static [&'static str],
    b_digraphs: &'static [&'static str],
}

const PAIRS: &[Pair] = &[
    // Czech ř ů ě, Slovak ä ĺ ľ ô ŕ, and words each spells its own way.
    Pair {
        a: Lang::Ces,
        b: Lang::Slk,
        a_letters: "řůěŘŮĚ",
        b_letters: "äĺľôŕÄĹĽÔŔ",
        a_words: &[
            "pro",
            "jsou",
            "nebo",
            "také",
            "který",
            "která",
            "které",
            "jako",
            "jen",
            "knihovny",
            "knihovna",
            "balíček",
        ],
        b_words: &[
            "pre",
            "sú",
            "alebo",
            "tiež",
            "ktorý",
            "ktorá",
            "ktoré",
            "ako",
            "len",
            "knižnice",
            "knižnica",
            "balík",
            "aj",
        ],
        a_digraphs: &[],
        b_digraphs: &[],
    },
    // Spanish ñ ¿ ¡, Portuguese ã õ ç nh lh, and words each spells its own way.
    Pair {
        a: Lang::Spa,
        b: Lang::Por,
        a_letters: "ñ¿¡Ñ",
        b_letters: "ãõçÃÕÇ",
        a_words: &[
            "el",
            "la",
            "los",
            "las",
            "del",
            "y",
            "es",
            "en",
            "una",
            "con",
            "puede",
            "también",
            "más",
            "muy",
            "pero",
            "hay",
            "su",
            "sus",
            "archivos",
            "archivo",
            "paquete",
            "contiene",
            "datos",
            "herramienta",
            "usuario",
            "cuando",
            "donde",
            "esto",
            "lo",
        ],
        b_words: &[
            "os",
            "do",
            "da",
            "dos",
            "das",
            "e",
            "é",
            "um",
            "em",
            "com",
            "não",
            "pode",
            "também",
            "mais",
            "muito",
            "seu",
            "sua",
            "seus",
            "suas",
            "arquivos",
            "arquivo",
            "pacote",
            "contém",
            "dados",
            "ferramenta",
            "usuário",
            "quando",
            "onde",
            "isto",
            "na",
            "nos",
            "nas",
            "ao",
            "outro",
            "outra",
        ],
        a_digraphs: &[],
        b_digraphs: &["nh", "lh"],
    },
    // Danish and Norwegian Bokmål share their letters; these words differ.
    Pair {
        a: Lang::Dan,
        b: Lang::Nob,
        a_letters: "",
        b_letters: "",
        a_words: &[
            "af",
            "efter",
            "hvad",
            "nogle",
            "noget",
            "mig",
            "dig",
            "sig",
            "bliver",
            "giver",
            "nu",
            "ud",
            "op",
            "sprog",
            "fejl",
            "meget",
            "indeholder",
            "understøttelse",
            "kræver",
            "værktøj",
            "værktøjer",
            "nemt",
            "mulighed",
            "bruges",
            "brug",
            "tilbyder",
            "tillader",
            "grænseflade",
            "nuværende",
        ],
        b_words: &[
            "av",
            "etter",
            "hva",
            "noen",
            "noe",
            "meg",
            "deg",
            "seg",
            "blir",
            "gir",
            "nå",
            "ut",
            "opp",
            "språk",
            "feil",
            "mye",
            "inneholder",
            "krever",
            "programvare",
            "verktøy",
            "mulighet",
            "brukes",
            "bruk",
            "tilbyr",
            "tillater",
            "grensesnitt",
            "nåværende",
        ],
        // Danish writes øj and ej where Bokmål writes øy and ei (højere,
        // arbejde); English fragments have ei too, so only øy counts for it.
        a_digraphs: &["øj", "ej"],
        b_digraphs: &["øy"],
    },
    // Dutch writes ij where Afrikaans writes y, and its own articles.
    Pair {
        a: Lang::Nld,
        b: Lang::Afr,
        a_letters: "",
        b_letters: "",
        // Not het, voor or u, which Afrikaans writes as often.
        a_words: &["de", "een", "niet", "zijn", "wordt", "deze", "worden", "kunt", "uw", "naar"],
        b_words: &["nie", "'n", "vir", "hierdie", "ek", "jy", "hulle", "baie"],
        a_digraphs: &["ij"],
        b_digraphs: &[],
    },
];

fn second_opinion(text: &str, lang: Lang) -> Lang {
    let Some(pair) = PAIRS.iter().find(|p| p.a == lang || p.b == lang) else {
        return lang;
    };
    let (mut a, mut b) = (0usize, 0usize);
    for c in text.chars() {
        a += usize::from(pair.a_letters.contains(c));
        b += usize::from(pair.b_letters.contains(c));
    }
    if !pair.a_words.is_empty() || !pair.a_digraphs.is_empty() {
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            let has = |digraphs: &[&str]| digraphs.iter().filter(|d| word.contains(*d)).count();
            a += usize::from(pair.a_words.contains(&word.as_str())) + has(pair.a_digraphs);
            b += usize::from(pair.b_words.contains(&word.as_str())) + has(pair.b_digraphs);
        }
    }
    match a.cmp(&b) {
        std::cmp::Ordering::Greater => pair.a,
        std::cmp::Ordering::Less => pair.b,
        std::cmp::Ordering::Equal => lang,
    }
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

    fn code_of(text: &str) -> String {
        let mut values = Vec::new();
        filter(&[], 0.0).filter(&Document::text_only(text), Measure::Metadata(&mut values));
        values[0].as_str().unwrap_or("none").to_owned()
    }

    #[test]
    fn cjk_text_full_of_english_terms_goes_by_its_script() {
        // Short descriptions as Debian translates them: whatlang alone reads
        // these as English (more Latin letters than CJK characters).
        let ja = "GNU/Linux の Debian パッケージ管理システム (apt-get, dpkg, aptitude) をサポートします。";
        let zh = "GNU/Linux Debian 软件包管理器 (apt-get, dpkg, aptitude), with the libapt library.";
        let ko = "GNU/Linux Debian 패키지 관리자 (apt-get, dpkg, aptitude), with the libapt library.";
        for (text, want) in [(ja, "ja"), (zh, "zh"), (ko, "ko")] {
            assert_eq!(whatlang::detect(text).unwrap().script(), whatlang::Script::Latin, "whatlang alone: {text}");
            assert_eq!(code_of(text), want);
        }
        // A name in Han characters does not make an English text Chinese.
        assert_eq!(code_of("The city of Tokyo (東京) is the capital of Japan and its largest city by far."), "en");
    }

    #[test]
    fn close_languages_are_told_apart_by_their_own_letters_and_words() {
        // Debian descriptions that whatlang 0.18 reads as the other of the pair.
        for (text, whatlang, want) in [
            ("Dette modul tilbyder et Perlomslag for biblioteket, som tillader adgang til data.", Lang::Nob, "da"),
            (
                "Dit pakket bevat het stuurprogramma voor Trident Blade/Image/ProVidia/TGUI\n/9xxx-videokaarten.\n\n\
                 Dit pakket is gebouwd vanuit de X.org xf86-video-trident driver module.",
                Lang::Afr,
                "nl",
            ),
            ("Tento balíček obsahuje obrázky a ruby karet používané karetními hrami v GNOME.", Lang::Slk, "cs"),
        ] {
            assert_eq!(whatlang::detect(text).unwrap().lang(), whatlang, "whatlang alone: {text}");
            assert_eq!(code_of(text), want);
        }
        // Czech's own letters win over a Spanish title.
        let cs = "\"Tenes Empanadas Graciela\" je klon Plan Tactico y Estrategico\nde la Guerra, vycházející ze hry \
                  Risk.\n\nTeg je hra pro více hráčů (je jí možné hrát přes Internet), která\nobsahuje server, klient \
                  GNOME a nějakého robota. Obsahuje také\npodporu IPv6.";
        assert_eq!(whatlang::detect(cs).unwrap().lang(), Lang::Spa);
        assert_eq!(code_of(cs), "cs");
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
