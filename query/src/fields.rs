//! Documents' fields, as the engine reads them (raw JSON by name), turned
//! into typed columns for a condition: the types are learnt from a sample
//! of the input before any work, and a later value of another type is that
//! document's error, not the batch's.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::predicate::{FieldType, Predicate, Values};
use crate::QueryError;

/// A document's fields other than its text, as the engine holds them.
pub type Fields = [(String, Box<RawValue>)];

/// A field by name: the field of that exact name (annotations are named
/// `step.signal`), else a path whose dots descend into nested objects.
pub fn lookup(fields: &Fields, name: &str) -> Option<Value> {
    if let Some((_, raw)) = fields.iter().find(|(k, _)| k == name) {
        return serde_json::from_str(raw.get()).ok();
    }
    let mut parts = name.split('.');
    let first = parts.next()?;
    let (_, raw) = fields.iter().find(|(k, _)| k == first)?;
    let mut value: Value = serde_json::from_str(raw.get()).ok()?;
    for key in parts {
        value = match value {
            Value::Object(mut map) => map.remove(key)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A condition whose fields' types are known: what evaluates batches.
#[derive(Debug, Clone)]
pub struct Typed {
    predicate: Predicate,
    types: Vec<FieldType>,
}

impl Typed {
    /// Learns the types of the condition's fields from sampled documents
    /// and checks the condition against them.
    pub fn from_sample(predicate: Predicate, sample: &[&Fields]) -> Result<Typed, QueryError> {
        let bad = |message: String| QueryError::Expression { text: predicate.text().to_owned(), message };
        let mut types = Vec::with_capacity(predicate.fields().len());
        for field in predicate.fields() {
            let mut seen: Option<FieldType> = None;
            let mut present = false;
            for doc in sample {
                let Some(value) = lookup(doc, field) else { continue };
                present = true;
                let t = match value {
                    Value::Null => continue,
                    Value::Number(_) => FieldType::Number,
                    Value::String(_) => FieldType::String,
                    Value::Bool(_) => FieldType::Bool,
                    Value::Array(_) | Value::Object(_) => {
                        return Err(bad(format!(
                            "field {field:?} holds lists or objects; a condition compares numbers, strings and booleans (name a nested field with dots)"
                        )))
                    }
                };
                match seen {
                    Some(s) if s != t => {
                        return Err(bad(format!("field {field:?} holds both {} and {} values", name(s), name(t))))
                    }
                    _ => seen = Some(t),
                }
            }
            if !present {
                let mut known: Vec<&str> = sample.iter().flat_map(|d| d.iter().map(|(k, _)| k.as_str())).collect();
                known.sort_unstable();
                known.dedup();
                return Err(bad(format!(
                    "unknown field {field:?}; the sampled documents have {}",
                    if known.is_empty() { "no fields".to_owned() } else { known.join(", ") }
                )));
            }
            types.push(seen.unwrap_or(FieldType::Null));
        }
        let named: Vec<(String, FieldType)> = predicate.fields().iter().cloned().zip(types.iter().copied()).collect();
        predicate.check(&named)?;
        Ok(Typed { predicate, types })
    }

    pub fn predicate(&self) -> &Predicate {
        &self.predicate
    }

    /// Whether the condition holds for each document, or why a document
    /// cannot be judged (a value of another type than the sample's).
    pub fn evaluate(&self, docs: &[&Fields]) -> Result<Vec<Result<bool, String>>, QueryError> {
        let mut errors: Vec<Option<String>> = vec![None; docs.len()];
        let mut columns = Vec::with_capacity(self.types.len());
        for (field, &t) in self.predicate.fields().iter().zip(&self.types) {
            let mut typed = |value: Option<Value>, row: usize| -> Option<Value> {
                match value {
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        let fits = matches!(
                            (&v, t),
                            (Value::Number(_), FieldType::Number | FieldType::Null)
                                | (Value::String(_), FieldType::String)
                                | (Value::Bool(_), FieldType::Bool)
                        );
                        if fits {
                            Some(v)
                        } else {
                            errors[row].get_or_insert_with(|| {
                                format!("field {field:?} is {v}, where the input's sample has {}", name(t))
                            });
                            None
                        }
                    }
                }
            };
            let values = docs.iter().enumerate().map(|(row, doc)| typed(lookup(doc, field), row));
            columns.push(match t {
                FieldType::Number | FieldType::Null => {
                    Values::Number(values.map(|v| v.and_then(|v| v.as_f64())).collect())
                }
                FieldType::String => {
                    Values::String(values.map(|v| v.and_then(|v| v.as_str().map(str::to_owned))).collect())
                }
                FieldType::Bool => Values::Bool(values.map(|v| v.and_then(|v| v.as_bool())).collect()),
            });
        }
        let keep = self.predicate.evaluate(columns)?;
        Ok(keep.into_iter().zip(errors).map(|(k, e)| e.map_or(Ok(k), Err)).collect())
    }
}

fn name(t: FieldType) -> &'static str {
    match t {
        FieldType::Number => "number",
        FieldType::String => "string",
        FieldType::Bool => "boolean",
        FieldType::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Vec<(String, Box<RawValue>)> {
        let map: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        map.into_iter().map(|(k, v)| (k, RawValue::from_string(v.to_string()).unwrap())).collect()
    }

    #[test]
    fn annotation_names_match_exactly_and_other_dots_descend() {
        let d = doc(r#"{"quality.words": 12, "meta": {"lang": "en"}}"#);
        assert_eq!(lookup(&d, "quality.words"), Some(Value::from(12)));
        assert_eq!(lookup(&d, "meta.lang"), Some(Value::from("en")));
        assert_eq!(lookup(&d, "meta.missing"), None);
    }

    #[test]
    fn types_come_from_the_sample_and_a_stray_value_fails_its_document_only() {
        let docs = [doc(r#"{"n": 3, "s": "en"}"#), doc(r#"{"n": null, "s": "fr"}"#), doc(r#"{"n": "x", "s": "en"}"#)];
        let rows: Vec<&Fields> = docs.iter().map(|d| d.as_slice()).collect();
        let typed = Typed::from_sample(Predicate::parse("n > 2 AND s = 'en'").unwrap(), &rows[..2]).unwrap();
        let out = typed.evaluate(&rows).unwrap();
        assert_eq!(out[0], Ok(true));
        assert_eq!(out[1], Ok(false));
        assert_eq!(out[2], Err("field \"n\" is \"x\", where the input's sample has number".to_owned()));
        let mixed = Typed::from_sample(Predicate::parse("n > 2").unwrap(), &rows).unwrap_err().to_string();
        assert!(mixed.contains("holds both number and string values"), "{mixed}");
        let unknown = Typed::from_sample(Predicate::parse("x > 2").unwrap(), &rows).unwrap_err().to_string();
        assert!(unknown.contains("unknown field \"x\"; the sampled documents have n, s"), "{unknown}");
    }
}
