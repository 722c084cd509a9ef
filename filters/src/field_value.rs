//! Keep or drop documents by the value of a metadata field, e.g. keep only
//! `lang = "en"` or drop `source = "spam"`. A dotted name (`meta.lang`)
//! looks inside nested objects.

use serde::Deserialize;
use serde_json::Value;

use crate::{ConfigError, Document, Filter, FilterConfig, Measure, Verdict};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldValueFilterConfig {
    /// Field name; dots descend into nested objects.
    pub field: String,
    /// When set, only documents whose field equals one of these are kept
    /// (`field_value_not_allowed`).
    #[serde(default)]
    pub keep_values: Option<Vec<Value>>,
    /// Documents whose field equals one of these are dropped (`field_value_excluded`).
    #[serde(default)]
    pub drop_values: Option<Vec<Value>>,
    /// What happens to a document without the field (or with `null`):
    /// `"drop"` (reason `field_missing`, the default) or `"keep"`.
    #[serde(default)]
    pub missing: Missing,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    #[default]
    Drop,
    Keep,
}

impl FilterConfig for FieldValueFilterConfig {
    type Filter = FieldValueFilter;

    fn build(self) -> Result<FieldValueFilter, ConfigError> {
        Ok(FieldValueFilter::new(self))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.field.is_empty() || self.field.split('.').any(str::is_empty) {
            return Err(format!("field {:?} is not a field name", self.field).into());
        }
        if self.keep_values.is_none() && self.drop_values.is_none() {
            return Err("set keep_values, drop_values or both".into());
        }
        Ok(())
    }
}

pub struct FieldValueFilter {
    config: FieldValueFilterConfig,
    path: Vec<String>,
}

impl FieldValueFilter {
    pub fn new(config: FieldValueFilterConfig) -> Self {
        let path = config.field.split('.').map(str::to_owned).collect();
        FieldValueFilter { config, path }
    }

    fn lookup(&self, doc: &Document<'_>) -> Option<Value> {
        let (first, rest) = self.path.split_first()?;
        let mut value = doc.metadata.field(first)?;
        for key in rest {
            value = match value {
                Value::Object(mut map) => map.remove(key)?,
                _ => return None,
            };
        }
        (!value.is_null()).then_some(value)
    }
}

impl Filter for FieldValueFilter {
    fn filter(&self, doc: &Document<'_>, _: Measure<'_>) -> Verdict {
        let Some(value) = self.lookup(doc) else {
            return match self.config.missing {
                Missing::Drop => Verdict::drop("field_missing"),
                Missing::Keep => Verdict::Keep,
            };
        };
        if let Some(keep) = &self.config.keep_values {
            if !keep.contains(&value) {
                return Verdict::drop("field_value_not_allowed");
            }
        }
        if let Some(drop) = &self.config.drop_values {
            if drop.contains(&value) {
                return Verdict::drop("field_value_excluded");
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;
    use serde_json::json;

    struct Fields(Value);
    impl Metadata for Fields {
        fn field(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
    }

    fn verdict(config: FieldValueFilterConfig, fields: Value) -> Verdict {
        let fields = Fields(fields);
        FieldValueFilter::new(config)
            .filter(&Document { id: "d", text: "t", metadata: &fields, words: None }, Measure::Verdict)
    }

    fn keep_en() -> FieldValueFilterConfig {
        FieldValueFilterConfig {
            field: "meta.lang".into(),
            keep_values: Some(vec![json!("en")]),
            drop_values: None,
            missing: Missing::Drop,
        }
    }

    #[test]
    fn keep_values_allow_list_over_a_nested_field() {
        assert_eq!(verdict(keep_en(), json!({"meta": {"lang": "en"}})), Verdict::Keep);
        assert_eq!(verdict(keep_en(), json!({"meta": {"lang": "fr"}})), Verdict::drop("field_value_not_allowed"));
    }

    #[test]
    fn missing_and_null_fields_follow_the_missing_setting() {
        assert_eq!(verdict(keep_en(), json!({"meta": {}})), Verdict::drop("field_missing"));
        assert_eq!(verdict(keep_en(), json!({"meta": {"lang": null}})), Verdict::drop("field_missing"));
        assert_eq!(verdict(keep_en(), json!({"meta": "flat"})), Verdict::drop("field_missing"));
        let keep_missing = FieldValueFilterConfig { missing: Missing::Keep, ..keep_en() };
        assert_eq!(verdict(keep_missing, json!({})), Verdict::Keep);
    }

    #[test]
    fn drop_values_compare_json_values_of_any_type() {
        let config = FieldValueFilterConfig {
            field: "year".into(),
            keep_values: None,
            drop_values: Some(vec![json!(1999), json!(true)]),
            missing: Missing::Keep,
        };
        assert_eq!(verdict(config.clone(), json!({"year": 1999})), Verdict::drop("field_value_excluded"));
        assert_eq!(verdict(config.clone(), json!({"year": "1999"})), Verdict::Keep);
        assert_eq!(verdict(config, json!({"year": 2000})), Verdict::Keep);
    }

    #[test]
    fn validate_refuses_empty_rules_and_bad_names() {
        let mut config = keep_en();
        config.keep_values = None;
        assert_eq!(config.validate().unwrap_err().0, "set keep_values, drop_values or both");
        let config = FieldValueFilterConfig { field: "a..b".into(), ..keep_en() };
        assert_eq!(config.validate().unwrap_err().0, "field \"a..b\" is not a field name");
    }
}
