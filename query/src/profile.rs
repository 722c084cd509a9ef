//! Distributions over a run's Parquet shards, computed by Polars' streaming
//! engine one column at a time, so that memory does not grow with the
//! input: summaries and histograms of numeric columns (annotated signals,
//! document length) and counts of a string column's values (languages).

use std::path::PathBuf;

use polars::prelude::*;

use crate::QueryError;

/// Shards a query reads at once (see [`Shards::scan`]).
const FILES_PER_SCAN: usize = 4;

/// What a report needs to know about a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Number,
    String,
    Other,
}

/// A numeric column's values (nulls left out), binned.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub nulls: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The bins: `counts[i]` values in `[lo + i*width, lo + (i+1)*width)`,
    /// the last closed.
    pub lo: f64,
    pub width: f64,
    pub counts: Vec<u64>,
    /// Values past the last bin: the range stops at four standard
    /// deviations above the mean (or at a threshold near the data) so that
    /// a long tail does not squeeze the rest into one bar.
    pub above: u64,
}

/// The Parquet shards of one output (all with the schema the engine gave
/// them).
pub struct Shards {
    files: Vec<PathBuf>,
}

impl Shards {
    pub fn new(files: Vec<PathBuf>) -> Shards {
        Shards { files }
    }

    /// A lazy scan of some of the shards: queries run over
    /// [`FILES_PER_SCAN`] files at a time and merge their results, because
    /// Polars' streaming scan reads ahead in several files at once and its
    /// memory would grow with their number.
    fn scan(&self, files: &[PathBuf]) -> Result<LazyFrame, QueryError> {
        let paths = files
            .iter()
            .map(|p| PlRefPath::try_from_path(p))
            .collect::<PolarsResult<Vec<_>>>()
            .map_err(|e| self.failed(e))?;
        LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default())
            .map_err(|e| self.failed(e))
    }

    fn groups(&self) -> std::slice::Chunks<'_, PathBuf> {
        self.files.chunks(FILES_PER_SCAN)
    }

    fn failed(&self, e: PolarsError) -> QueryError {
        let first = self.files.first().map(|p| p.display().to_string()).unwrap_or_default();
        QueryError::Scan { files: self.files.len(), first, message: e.to_string() }
    }

    fn collect(&self, frame: LazyFrame) -> Result<DataFrame, QueryError> {
        frame.collect_with_engine(Engine::Streaming).map(|r| r.unwrap_single()).map_err(|e| self.failed(e))
    }

    /// Every column and its kind, from the shards' schema.
    pub fn columns(&self) -> Result<Vec<(String, ColumnKind)>, QueryError> {
        let schema = self.scan(&self.files[..self.files.len().min(1)])?.collect_schema().map_err(|e| self.failed(e))?;
        Ok(schema
            .iter()
            .map(|(name, dtype)| {
                let kind = if dtype.is_primitive_numeric() {
                    ColumnKind::Number
                } else if dtype == &DataType::String {
                    ColumnKind::String
                } else {
                    ColumnKind::Other
                };
                (name.to_string(), kind)
            })
            .collect())
    }

    /// The distribution of a numeric column, or `None` when it holds only nulls.
    pub fn distribution(&self, column: &str, bins: usize, marks: &[f64]) -> Result<Option<Distribution>, QueryError> {
        self.distribution_of(col(column).cast(DataType::Float64), bins, marks)
    }

    /// The distribution of a string column's lengths in characters.
    pub fn lengths(&self, column: &str, bins: usize) -> Result<Option<Distribution>, QueryError> {
        self.distribution_of(col(column).str().len_chars().cast(DataType::Float64), bins, &[])
    }

    fn distribution_of(&self, value: Expr, bins: usize, marks: &[f64]) -> Result<Option<Distribution>, QueryError> {
        let value = value.alias("v");
        let (mut count, mut nulls, mut sum, mut squares) = (0u64, 0u64, 0.0f64, 0.0f64);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for files in self.groups() {
            let summary = self.collect(self.scan(files)?.select([value.clone()]).select([
                col("v").count().cast(DataType::Float64).alias("count"),
                col("v").null_count().cast(DataType::Float64).alias("nulls"),
                col("v").min().alias("min"),
                col("v").max().alias("max"),
                col("v").sum().alias("sum"),
                (col("v") * col("v")).sum().alias("squares"),
            ]))?;
            let get = |name: &str| -> Option<f64> {
                let c = summary.column(name).ok()?;
                c.cast(&DataType::Float64).ok()?.f64().ok()?.get(0)
            };
            count += get("count").unwrap_or(0.0) as u64;
            nulls += get("nulls").unwrap_or(0.0) as u64;
            sum += get("sum").unwrap_or(0.0);
            squares += get("squares").unwrap_or(0.0);
            min = min.min(get("min").unwrap_or(f64::INFINITY));
            max = max.max(get("max").unwrap_or(f64::NEG_INFINITY));
        }
        if count == 0 {
            return Ok(None);
        }
        let mean = sum / count as f64;
        let std = if count > 1 { ((squares - sum * mean) / (count - 1) as f64).max(0.0).sqrt() } else { 0.0 };
        // The range covers the data (its tail cut at four standard
        // deviations) and the thresholds near it: a bound far from every
        // value (100,000 words) would squeeze the data into one bar.
        let data_hi = max.min(mean + 4.0 * std).max(min);
        let span = data_hi - min;
        let near = |m: f64| m.is_finite() && (span == 0.0 || (m >= min - span && m <= data_hi + span));
        let lo = marks.iter().copied().filter(|&m| near(m)).fold(min, f64::min);
        let hi = marks.iter().copied().filter(|&m| near(m)).fold(data_hi, f64::max);
        let bins = bins.max(1);
        let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
        // Bin -1: past the range; `bins`: the top edge itself, in the last bin.
        let bin = when(col("v").gt(lit(hi)))
            .then(lit(-1i64))
            .otherwise(((col("v") - lit(lo)) / lit(width)).cast(DataType::Int64))
            .alias("bin");
        let mut counts = vec![0u64; bins];
        let mut above = 0;
        for files in self.groups() {
            let counted = self.collect(
                self.scan(files)?
                    .select([value.clone()])
                    .filter(col("v").is_not_null())
                    .select([bin.clone()])
                    .group_by([col("bin")])
                    .agg([len().cast(DataType::UInt64).alias("n")]),
            )?;
            let (b, n) = (counted.column("bin"), counted.column("n"));
            let (Ok(b), Ok(n)) = (b, n) else { return Err(self.failed(polars_err!(ColumnNotFound: "bin"))) };
            let (b, n) = (b.i64().map_err(|e| self.failed(e))?, n.u64().map_err(|e| self.failed(e))?);
            for (b, n) in (0..b.len()).map(|i| (b.get(i), n.get(i))) {
                let (Some(b), Some(n)) = (b, n) else { continue };
                if b < 0 {
                    above += n;
                } else {
                    counts[(b as usize).min(bins - 1)] += n;
                }
            }
        }
        Ok(Some(Distribution { count, nulls, min, max, mean, lo, width, counts, above }))
    }

    /// How many rows hold each value of a string column, most first (ties
    /// by value), the `top` most common and the rest summed as `(other)`;
    /// nulls as `(null)`.
    pub fn value_counts(&self, column: &str, top: usize) -> Result<Vec<(String, u64)>, QueryError> {
        let mut totals: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for files in self.groups() {
            let counted = self.collect(
                self.scan(files)?
                    .select([col(column).cast(DataType::String).alias("value")])
                    .group_by([col("value")])
                    .agg([len().cast(DataType::UInt64).alias("n")]),
            )?;
            let values = counted.column("value").and_then(|c| c.str().cloned()).map_err(|e| self.failed(e))?;
            let n = counted.column("n").and_then(|c| c.u64().cloned()).map_err(|e| self.failed(e))?;
            for i in 0..values.len() {
                let value = values.get(i).map_or_else(|| "(null)".to_owned(), str::to_owned);
                *totals.entry(value).or_default() += n.get(i).unwrap_or(0);
            }
        }
        let mut rows: Vec<(String, u64)> = totals.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if rows.len() > top {
            let other: u64 = rows[top..].iter().map(|(_, n)| n).sum();
            rows.truncate(top);
            rows.push(("(other)".into(), other));
        }
        Ok(rows)
    }
}
