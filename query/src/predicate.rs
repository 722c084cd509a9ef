//! A SQL-style condition over a document's fields and signals
//! (`"quality.words" >= 80 AND language = 'en'`), parsed by Polars' SQL
//! front end and evaluated by Polars over a batch of rows at a time.
//!
//! The same WHERE semantics as SQL and as a Polars or pyarrow filter: a
//! row is kept when the condition is true; false and null (a missing
//! field, a comparison with null) drop it.

use polars::prelude::*;

use crate::QueryError;

/// What a field holds, as far as a condition is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Number,
    String,
    Bool,
    /// Only nulls were seen: compared as a number column.
    Null,
}

impl FieldType {
    fn dtype(self) -> DataType {
        match self {
            FieldType::Number | FieldType::Null => DataType::Float64,
            FieldType::String => DataType::String,
            FieldType::Bool => DataType::Boolean,
        }
    }
}

/// One field's values for a batch of rows, `None` where a row has none.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Number(Vec<Option<f64>>),
    String(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Number(v) => v.len(),
            Values::String(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn into_column(self, name: &str) -> Column {
        let name = PlSmallStr::from_str(name);
        match self {
            Values::Number(v) => Column::new(name, v),
            Values::String(v) => Column::new(name, v),
            Values::Bool(v) => Column::new(name, v),
        }
    }
}

/// A parsed condition and the fields it reads.
#[derive(Clone)]
pub struct Predicate {
    text: String,
    expr: Expr,
    fields: Vec<String>,
}

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predicate").field("text", &self.text).field("fields", &self.fields).finish()
    }
}

impl Predicate {
    /// Parses `text` as a SQL expression; a syntax error is refused here,
    /// names and types by [`Predicate::check`].
    pub fn parse(text: &str) -> Result<Predicate, QueryError> {
        let bad = |message: String| QueryError::Expression { text: text.to_owned(), message };
        if text.trim().is_empty() {
            return Err(bad("the condition is empty".into()));
        }
        let expr = polars::sql::sql_expr(text).map_err(|e| bad(polars_message(&e)))?;
        let mut fields: Vec<String> = expr.clone().meta().root_names().iter().map(|n| n.to_string()).collect();
        fields.sort();
        fields.dedup();
        if fields.is_empty() {
            return Err(bad("the condition reads no field; name one (double quotes around names with dots)".into()));
        }
        Ok(Predicate { text: text.to_owned(), expr, fields })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The fields the condition reads, sorted.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Checks the condition against the types of the fields found in the
    /// input (`types`, by name): names an unknown field with the fields
    /// there are, and refuses a type mismatch or a condition that is not
    /// true or false, before any work.
    pub fn check(&self, types: &[(String, FieldType)]) -> Result<(), QueryError> {
        let bad = |message: String| QueryError::Expression { text: self.text.clone(), message };
        let mut columns = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let Some((_, t)) = types.iter().find(|(name, _)| name == field) else {
                let mut known: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
                known.sort_unstable();
                return Err(bad(format!("unknown field {field:?}; the input has {}", known.join(", "))));
            };
            columns.push(Column::full_null(PlSmallStr::from_str(field), 1, &t.dtype()));
        }
        // One row of nulls: Polars settles some types only when it computes.
        let frame = DataFrame::new(1, columns).map_err(|e| bad(polars_message(&e)))?;
        let described = || {
            self.fields
                .iter()
                .map(|f| {
                    let t = types.iter().find(|(n, _)| n == f).map(|(_, t)| *t).unwrap_or(FieldType::Null);
                    format!("{f:?} is {}", describe(t))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let result = frame
            .lazy()
            .select([self.expr.clone().alias(KEEP)])
            .collect()
            .map_err(|e| bad(format!("{} ({})", polars_message(&e), described())))?;
        match result.column(KEEP).map(|c| c.dtype().clone()) {
            Ok(DataType::Boolean) => Ok(()),
            Ok(other) => Err(bad(format!("the condition gives {other}, not true or false ({})", described()))),
            Err(_) => Err(bad("the condition gives no value".into())),
        }
    }

    /// Whether the condition holds for each row of a batch: `columns` holds
    /// the values of [`Predicate::fields`], in that order, one per row.
    pub fn evaluate(&self, columns: Vec<Values>) -> Result<Vec<bool>, QueryError> {
        let bad = |e: PolarsError| QueryError::Evaluate { text: self.text.clone(), message: polars_message(&e) };
        assert_eq!(columns.len(), self.fields.len(), "one column per field the condition reads");
        let height = columns.first().map_or(0, Values::len);
        let columns: Vec<Column> =
            columns.into_iter().zip(&self.fields).map(|(values, name)| values.into_column(name)).collect();
        let frame = DataFrame::new(height, columns).map_err(bad)?;
        let result = frame.lazy().select([self.expr.clone().alias(KEEP)]).collect().map_err(bad)?;
        let keep = result.column(KEEP).map_err(bad)?;
        let keep = keep.bool().map_err(bad)?;
        // A literal condition (`1 = 1` beside a field) comes back as one value.
        if keep.len() == 1 && height != 1 {
            return Ok(vec![keep.get(0) == Some(true); height]);
        }
        Ok(keep.downcast_iter().flat_map(|chunk| chunk.iter()).map(|v| v == Some(true)).collect())
    }
}

const KEEP: &str = "__curate_keep";

fn describe(t: FieldType) -> &'static str {
    match t {
        FieldType::Number => "a number",
        FieldType::String => "a string",
        FieldType::Bool => "a boolean",
        FieldType::Null => "always null in the sample",
    }
}

/// Polars' message without its error-kind prefix and trailing context.
fn polars_message(e: &PolarsError) -> String {
    let text = e.to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(&text).trim();
    first.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<(String, FieldType)> {
        vec![
            ("quality.words".into(), FieldType::Number),
            ("language".into(), FieldType::String),
            ("flag".into(), FieldType::Bool),
        ]
    }

    #[test]
    fn a_condition_keeps_true_rows_and_drops_false_and_null() {
        let p = Predicate::parse(r#""quality.words" >= 80 AND language = 'en'"#).unwrap();
        assert_eq!(p.fields(), ["language", "quality.words"]);
        p.check(&types()).unwrap();
        let keep = p
            .evaluate(vec![
                Values::String(vec![Some("en".into()), Some("en".into()), None, Some("fr".into())]),
                Values::Number(vec![Some(80.0), Some(79.5), Some(100.0), Some(200.0)]),
            ])
            .unwrap();
        assert_eq!(keep, [true, false, false, false]);
    }

    #[test]
    fn or_in_not_and_is_null_follow_sql() {
        let p = Predicate::parse("language IN ('en', 'de') OR NOT flag OR \"quality.words\" IS NULL").unwrap();
        p.check(&types()).unwrap();
        let keep = p
            .evaluate(vec![
                Values::Bool(vec![Some(true), Some(false), Some(true), None]),
                Values::String(vec![Some("de".into()), Some("fr".into()), Some("fr".into()), Some("fr".into())]),
                Values::Number(vec![Some(1.0), Some(1.0), None, Some(1.0)]),
            ])
            .unwrap();
        assert_eq!(keep, [true, true, true, false]);
    }

    #[test]
    fn unknown_fields_type_mismatches_and_non_conditions_are_refused() {
        let err = Predicate::parse("langauge = 'en'").unwrap().check(&types()).unwrap_err().to_string();
        assert!(err.contains("unknown field \"langauge\"; the input has flag, language, quality.words"), "{err}");
        let err = Predicate::parse("language > 3").unwrap().check(&types()).unwrap_err().to_string();
        assert!(err.contains("\"language\" is a string"), "{err}");
        let err = Predicate::parse("\"quality.words\" + 1").unwrap().check(&types()).unwrap_err().to_string();
        assert!(err.contains("not true or false"), "{err}");
        let err = Predicate::parse("language = ").unwrap_err().to_string();
        assert!(err.starts_with("--where \"language = \": "), "{err}");
        assert!(Predicate::parse("1 = 1").is_err(), "a condition must read a field");
    }
}
