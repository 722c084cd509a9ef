//! A document in flight through the engine, and its JSON form.
//!
//! Fields other than the text are kept as raw JSON (`RawValue`) in input
//! order: they are carried to the output unchanged without ever being
//! decoded, which is both faithful and cheap. Only the text (and the id) are
//! decoded, because steps read them.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a record could not become a document. The kind is a stable key in
/// `stats.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A line that is not valid UTF-8.
    InvalidUtf8,
    /// A line that is not one JSON object.
    InvalidJson,
    /// No text field, or `null`.
    MissingText,
    /// A text field that is not a string.
    TextNotString,
    /// A compressed stream or Parquet file that breaks off or does not decode.
    CorruptInput,
    /// A file that cannot be opened or read.
    UnreadableFile,
    /// A kept document whose fields do not fit the Parquet output's schema.
    OutputSchema,
    /// A step failed (panicked) on the document.
    StepFailed,
    /// An annotating step would write a field the document has already.
    FieldCollision,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::MissingText => "missing_text",
            ErrorKind::TextNotString => "text_not_string",
            ErrorKind::CorruptInput => "corrupt_input",
            ErrorKind::UnreadableFile => "unreadable_file",
            ErrorKind::OutputSchema => "output_schema",
            ErrorKind::StepFailed => "step_failed",
            ErrorKind::FieldCollision => "field_collision",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DocError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DocError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> DocError {
        DocError { kind, message: message.into() }
    }
}

/// One document.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The input's id, as a string, or a stable one made from the file and
    /// position (`<file>#<n>`) when the input had none.
    pub id: String,
    pub text: String,
    /// Every field but the text, in input order, as raw JSON. The id is
    /// always among them (appended when the input had none).
    pub fields: Vec<(String, Box<RawValue>)>,
    /// Where the text stood among `fields`, so output keeps the input's order.
    pub text_pos: usize,
    /// Byte offset of the line in the (decompressed) file, or the row number.
    pub position: u64,
    /// The text's word split, shared by the filters that need it; cleared
    /// when a step rewrites the text.
    pub words: curate_filters::WordCache,
    /// Where the engine read the document: how the dedup stages name it.
    pub place: Place,
}

/// A document's place in its input: the unit of input it was read from,
/// and its index among that unit's documents (bad records not counted).
/// Ordered by unit, then index: input order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub unit: u32,
    pub index: u32,
}

/// Names of the two fields the engine reads.
#[derive(Debug, Clone)]
pub struct FieldNames {
    pub text: String,
    pub id: String,
    /// The text field may be absent or hold any JSON value, and the text is
    /// that value's JSON (empty when absent): for chat records, whose
    /// `messages` is an array.
    pub raw_text: bool,
}

impl Doc {
    /// Parses one JSON Lines record. `fallback_id` names a document that has
    /// no id (or a `null` one).
    pub fn from_json_line(
        line: &[u8],
        names: &FieldNames,
        position: u64,
        fallback_id: impl FnOnce() -> String,
    ) -> Result<Doc, DocError> {
        let line = std::str::from_utf8(line)
            .map_err(|e| DocError::new(ErrorKind::InvalidUtf8, format!("invalid UTF-8: {e}")))?;
        let mut de = serde_json::Deserializer::from_str(line);
        let (fields, text, text_pos) =
            de::DeserializeSeed::deserialize(TextAndFields { text_field: &names.text, raw: names.raw_text }, &mut de)
                .and_then(|parsed| de.end().map(|()| parsed))
                .map_err(|e| DocError::new(ErrorKind::InvalidJson, format!("invalid JSON: {e}")))?;
        let text = match text {
            TextValue::Text(text) => text,
            TextValue::Missing if names.raw_text => String::new(),
            TextValue::Missing => {
                return Err(DocError::new(ErrorKind::MissingText, format!("no field {:?}", names.text)))
            }
            TextValue::Null => {
                return Err(DocError::new(ErrorKind::MissingText, format!("field {:?} is null", names.text)))
            }
            TextValue::Other(kind) => {
                return Err(DocError::new(
                    ErrorKind::TextNotString,
                    format!("field {:?} is {kind}, not a string", names.text),
                ))
            }
        };
        Ok(Doc::assemble(fields, text, text_pos, names, position, fallback_id))
    }

    /// Builds a document from its decoded text and the other raw fields,
    /// giving it an id from `fallback_id` when it has none.
    pub fn assemble(
        mut fields: Vec<(String, Box<RawValue>)>,
        text: String,
        text_pos: usize,
        names: &FieldNames,
        position: u64,
        fallback_id: impl FnOnce() -> String,
    ) -> Doc {
        let id = match fields.iter_mut().find(|(k, _)| *k == names.id) {
            Some((_, raw)) => match raw.get().as_bytes()[0] {
                b'"' => serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned()),
                b'n' => {
                    let id = fallback_id();
                    *raw = json_string(&id);
                    id
                }
                _ => raw.get().to_owned(),
            },
            None => {
                let id = fallback_id();
                fields.push((names.id.clone(), json_string(&id)));
                id
            }
        };
        Doc { id, text, fields, text_pos, position, words: Default::default(), place: Place::default() }
    }

    /// Sets a field (other than the text) to a JSON value, in place when the
    /// document has it, else at the end.
    pub fn set_field(&mut self, name: &str, value: &serde_json::Value) {
        let raw = RawValue::from_string(value.to_string()).expect("a JSON value serialises to JSON");
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, old)) => *old = raw,
            None => self.fields.push((name.to_owned(), raw)),
        }
    }

    /// Appends the document as one JSON object (no newline), with `extra`
    /// string fields at the end (the rejected output's step and reason).
    pub fn write_json(&self, out: &mut Vec<u8>, text_field: &str, extra: &[(&str, &str)]) {
        self.write_json_as(out, text_field, None, extra)
    }

    /// [`Doc::write_json`], with the field `string_id` (the id) written as a
    /// JSON string when it is an object or an array: for Parquet output,
    /// whose id column is a string (numbers and booleans are converted there).
    pub fn write_json_as(&self, out: &mut Vec<u8>, text_field: &str, string_id: Option<&str>, extra: &[(&str, &str)]) {
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        for i in 0..=self.fields.len() {
            if i == self.text_pos {
                sep(out);
                write_json_str(out, text_field);
                out.push(b':');
                write_json_str(out, &self.text);
            }
            if let Some((key, raw)) = self.fields.get(i) {
                sep(out);
                write_json_str(out, key);
                out.push(b':');
                let raw = raw.get();
                if string_id == Some(key.as_str()) && raw.starts_with(['{', '[']) {
                    write_json_str(out, raw);
                } else {
                    out.extend_from_slice(raw.as_bytes());
                }
            }
        }
        for (key, value) in extra {
            sep(out);
            write_json_str(out, key);
            out.push(b':');
            write_json_str(out, value);
        }
        out.push(b'}');
    }
}

impl curate_filters::Metadata for Doc {
    fn field(&self, name: &str) -> Option<serde_json::Value> {
        let (_, raw) = self.fields.iter().find(|(k, _)| k == name)?;
        serde_json::from_str(raw.get()).ok()
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

/// A string as a raw JSON value.
pub(crate) fn json_string(s: &str) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(s).expect("a string serialises")).expect("a serialised string is JSON")
}

/// A JSON object's fields, in order, values left raw.
pub struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The text field's value, decoded while the line is parsed.
enum TextValue {
    Missing,
    Text(String),
    Null,
    /// Not a string: what it is, for the error.
    Other(&'static str),
}

/// A JSON object's fields, in order, values left raw, except the (first)
/// text field, whose string is decoded straight from the line: it is most
/// of the line, and keeping it raw to decode later would copy and parse it
/// twice more. Gives the fields, the text and the text's position.
struct TextAndFields<'n> {
    text_field: &'n str,
    /// Keep the text field's JSON, whatever its type ([`FieldNames::raw_text`]).
    raw: bool,
}

impl<'de> de::DeserializeSeed<'de> for TextAndFields<'_> {
    type Value = (Vec<(String, Box<RawValue>)>, TextValue, usize);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for TextAndFields<'_> {
    type Value = (Vec<(String, Box<RawValue>)>, TextValue, usize);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    /// A key given twice keeps its last value at its first place, as
    /// Python's `json.loads` (and so datatrove) reads it: the filters judge
    /// the text the writers write, and the output has each key once.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, Box<RawValue>)> = Vec::with_capacity(map.size_hint().unwrap_or(4));
        let (mut text, mut text_pos, mut has_text) = (TextValue::Missing, 0, false);
        // Where each key is, once there are too many to look through.
        let mut index: Option<std::collections::HashMap<String, usize>> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.text_field {
                text = if self.raw {
                    TextValue::Text(map.next_value::<Box<RawValue>>()?.get().to_owned())
                } else {
                    map.next_value_seed(TextSeed)?
                };
                if !has_text {
                    text_pos = fields.len();
                    has_text = true;
                }
                continue;
            }
            let value = map.next_value::<Box<RawValue>>()?;
            if fields.len() == 32 && index.is_none() {
                index = Some(fields.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
            }
            let earlier = match &index {
                Some(index) => index.get(&key).copied(),
                None => fields.iter().position(|(k, _)| *k == key),
            };
            match earlier {
                Some(i) => fields[i].1 = value,
                None => {
                    if let Some(index) = index.as_mut() {
                        index.insert(key.clone(), fields.len());
                    }
                    fields.push((key, value));
                }
            }
        }
        Ok((fields, text, text_pos))
    }
}

struct TextSeed;

impl<'de> de::DeserializeSeed<'de> for TextSeed {
    type Value = TextValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TextValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for TextSeed {
    type Value = TextValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<TextValue, E> {
        Ok(TextValue::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<TextValue, E> {
        Ok(TextValue::Text(v))
    }
    fn visit_unit<E>(self) -> Result<TextValue, E> {
        Ok(TextValue::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<TextValue, E> {
        Ok(TextValue::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<TextValue, E> {
        Ok(TextValue::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<TextValue, E> {
        Ok(TextValue::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<TextValue, E> {
        Ok(TextValue::Other("a number"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextValue, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(TextValue::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextValue, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(TextValue::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> FieldNames {
        FieldNames { text: "text".into(), id: "id".into(), raw_text: false }
    }

    fn parse(line: &str) -> Result<Doc, DocError> {
        Doc::from_json_line(line.as_bytes(), &names(), 42, || "f.jsonl#42".into())
    }

    fn round_trip(line: &str) -> String {
        let mut out = Vec::new();
        parse(line).unwrap().write_json(&mut out, "text", &[]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn other_fields_round_trip_unchanged_and_in_order() {
        let line = r#"{"a":1.50,"text":"h\u00e9","meta":{"x":[1, 2]},"id":"d1"}"#;
        let doc = parse(line).unwrap();
        assert_eq!(doc.text, "hé");
        assert_eq!(doc.id, "d1");
        assert_eq!(round_trip(line), r#"{"a":1.50,"text":"hé","meta":{"x":[1, 2]},"id":"d1"}"#);
    }

    #[test]
    fn a_missing_or_null_id_gets_the_fallback() {
        assert_eq!(round_trip(r#"{"text":"t"}"#), r#"{"text":"t","id":"f.jsonl#42"}"#);
        assert_eq!(round_trip(r#"{"id":null,"text":"t"}"#), r#"{"id":"f.jsonl#42","text":"t"}"#);
        assert_eq!(parse(r#"{"id":7,"text":"t"}"#).unwrap().id, "7");
    }

    #[test]
    fn bad_records_are_classified() {
        let kind = |line: &[u8]| Doc::from_json_line(line, &names(), 0, String::new).unwrap_err().kind;
        assert_eq!(kind(b"{\"text\": \"\xff\"}"), ErrorKind::InvalidUtf8);
        assert_eq!(kind(b"{\"text\": \"abc"), ErrorKind::InvalidJson);
        assert_eq!(kind(b"[1, 2]"), ErrorKind::InvalidJson);
        assert_eq!(kind(b"{\"body\": \"abc\"}"), ErrorKind::MissingText);
        assert_eq!(kind(b"{\"text\": null}"), ErrorKind::MissingText);
        assert_eq!(kind(b"{\"text\": 12}"), ErrorKind::TextNotString);
        assert_eq!(kind(b"{\"text\": \"a\"} trailing"), ErrorKind::InvalidJson);
        let message = |line: &[u8]| Doc::from_json_line(line, &names(), 0, String::new).unwrap_err().message;
        assert!(message(b"{\"text\": {\"a\": [1]}}").contains("is an object, not a string"));
        assert!(message(b"{\"text\": [\"a\"]}").contains("is an array, not a string"));
        assert!(message(b"{\"text\": true}").contains("is a boolean, not a string"));
        assert!(message(b"{\"text\": -1.5}").contains("is a number, not a string"));
    }

    #[test]
    fn the_text_field_is_decoded() {
        let doc = parse(r#"{"id": "a", "text": "line\none \"q\" \u00e9"}"#).unwrap();
        assert_eq!(doc.text, "line\none \"q\" é");
    }

    /// A key given twice keeps its last value at its first place, as Python
    /// reads it, for the text as for any field: what the filters judge is
    /// what is written. See: issue 13, defect 12.
    #[test]
    fn r13_a_repeated_key_keeps_its_last_value_at_its_first_place() {
        let doc = parse(r#"{"id": "a", "text": "first", "n": 1, "text": "second", "n": 2}"#).unwrap();
        assert_eq!(doc.text, "second");
        assert_eq!(
            round_trip(r#"{"id": "a", "text": "x", "m": 0, "text": "y", "id": "b"}"#),
            r#"{"id":"b","text":"y","m":0}"#
        );
        assert_eq!(parse(r#"{"text": "t", "id": "a", "id": "b"}"#).unwrap().id, "b");
        let many: String = (0..100).map(|i| format!("\"k{}\": {i}, ", i % 40)).collect();
        let doc = parse(&format!("{{{many}\"text\": \"t\"}}")).unwrap();
        assert_eq!(doc.fields.len(), 41, "40 keys and the id");
        assert_eq!((doc.fields[0].0.as_str(), doc.fields[0].1.get()), ("k0", "80"));
    }

    #[test]
    fn rejected_extras_are_appended() {
        let mut out = Vec::new();
        parse(r#"{"text":"t","id":"x"}"#).unwrap().write_json(
            &mut out,
            "text",
            &[("step", "len"), ("reason", "too_short")],
        );
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"text":"t","id":"x","step":"len","reason":"too_short"}"#);
    }
}
