//! Output shards: Parquet (zstd) or JSON Lines (.zst), rolled at a target
//! size, written under hidden temporary names and renamed by [`commit`] only
//! when the unit that produced them is complete.
//!
//! A writer takes documents already encoded as JSON objects: the same bytes
//! become a JSON line or, through arrow-json, a Parquet row, so the two
//! formats cannot disagree about a document's fields.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::atomic::{self, temp_path, WriteError};
use super::format::OutputFormat;

pub struct WriterOptions {
    pub format: OutputFormat,
    pub shard_bytes: u64,
    pub row_group_rows: usize,
    pub row_group_bytes: usize,
    pub level: i32,
    /// zstd workers per JSON Lines shard.
    pub compress_threads: u32,
    /// Parquet only (and then always): the columns every shard has.
    pub schema: Option<SchemaRef>,
    pub text_field: String,
}

impl WriterOptions {
    pub fn extension(&self) -> &'static str {
        match self.format {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Jsonl => "jsonl.zst",
        }
    }
}

/// Compressed bytes that reached the file so far.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Jsonl(JsonlShard),
    Parquet(Box<ArrowWriter<File>>),
}

/// A JSON Lines shard being compressed. zstd holds back what it has not
/// compressed yet (megabytes, in its multithreaded mode), so the bytes on
/// disk lag behind the lines written: the shard's size is estimated from
/// what is held back at the ratio seen so far, and zstd is flushed, for
/// the exact size, only when that estimate reaches the target.
struct JsonlShard {
    encoder: zstd::stream::write::Encoder<'static, CountingWriter<BufWriter<File>>>,
    /// Uncompressed bytes written, and how many of them were flushed.
    raw: u64,
    raw_flushed: u64,
}

impl JsonlShard {
    /// The shard's size once what zstd holds is written, at least as far as
    /// the next flush tells.
    fn size(&mut self, target: u64) -> io::Result<u64> {
        let written = self.encoder.get_ref().count;
        let held = (self.raw - self.raw_flushed) as f64;
        // Before the first flush nothing tells the ratio: assume none.
        let ratio = if self.raw_flushed == 0 { 1.0 } else { written as f64 / self.raw_flushed as f64 };
        if written as f64 + held * ratio < target as f64 {
            return Ok(written);
        }
        self.encoder.flush()?;
        self.raw_flushed = self.raw;
        Ok(self.encoder.get_ref().count)
    }
}

/// A batch ready for a shard: JSON lines, or rows already checked against
/// the Parquet schema. Preparing is separate from writing so that the
/// (sequential) writing can run on its own thread while the next batch is
/// read and judged.
pub enum Prepared {
    Lines(Vec<Vec<u8>>),
    Rows(RecordBatch),
}

impl WriterOptions {
    /// Prepares documents given as JSON objects. Returns the records that do
    /// not fit the Parquet schema (their index and why); they are left out.
    pub fn prepare(&self, records: Vec<Vec<u8>>) -> (Option<Prepared>, Vec<(usize, String)>) {
        if records.is_empty() {
            return (None, Vec::new());
        }
        match &self.schema {
            None => (Some(Prepared::Lines(records)), Vec::new()),
            Some(schema) => {
                let (batch, misfits) = decode(schema, &records);
                (batch.map(Prepared::Rows), misfits)
            }
        }
    }
}

/// The shards of one unit: `{stem}-000.{ext}`, `{stem}-001.{ext}`, ...
pub struct ShardWriter {
    dir: PathBuf,
    stem: String,
    options: Arc<WriterOptions>,
    open: Option<(PathBuf, Sink)>,
    finished: Vec<PathBuf>,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl ShardWriter {
    pub fn new(dir: &Path, stem: String, options: Arc<WriterOptions>) -> ShardWriter {
        ShardWriter { dir: dir.to_owned(), stem, options, open: None, finished: Vec::new() }
    }

    fn open_next(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}-{:03}.{}", self.stem, self.finished.len(), self.options.extension()));
        let file = File::create(temp_path(&path))?;
        let sink = match self.options.format {
            OutputFormat::Jsonl => {
                let counting = CountingWriter { inner: BufWriter::with_capacity(1 << 20, file), count: 0 };
                let mut encoder = zstd::stream::write::Encoder::new(counting, self.options.level)?;
                // zstd's multithreaded mode writes the same bytes for any
                // number of workers >= 1 (unlike its single-threaded mode),
                // so output stays independent of the thread count.
                encoder.multithread(self.options.compress_threads.max(1))?;
                Sink::Jsonl(JsonlShard { encoder, raw: 0, raw_flushed: 0 })
            }
            OutputFormat::Parquet => {
                let schema = self.options.schema.clone().expect("Parquet output has a schema");
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.options.level).map_err(other)?))
                    .set_max_row_group_row_count(Some(self.options.row_group_rows))
                    // Text rarely repeats: a dictionary for it is work thrown away.
                    .set_column_dictionary_enabled(ColumnPath::from(self.options.text_field.as_str()), false)
                    .build();
                Sink::Parquet(Box::new(ArrowWriter::try_new(file, schema, Some(props)).map_err(other)?))
            }
        };
        self.open = Some((path, sink));
        Ok(())
    }

    /// Writes a prepared batch, and closes the shard once it reaches the
    /// target size (the next batch opens a new one).
    pub fn write(&mut self, batch: Prepared) -> io::Result<()> {
        if self.open.is_none() {
            self.open_next()?;
        }
        let (_, sink) = self.open.as_mut().expect("opened above");
        let size = match (sink, batch) {
            (Sink::Jsonl(shard), Prepared::Lines(lines)) => {
                for line in lines {
                    shard.encoder.write_all(&line)?;
                    shard.encoder.write_all(b"\n")?;
                    shard.raw += line.len() as u64 + 1;
                }
                shard.size(self.options.shard_bytes)?
            }
            (Sink::Parquet(writer), Prepared::Rows(batch)) => {
                writer.write(&batch).map_err(other)?;
                if writer.in_progress_size() >= self.options.row_group_bytes {
                    writer.flush().map_err(other)?;
                }
                (writer.bytes_written() + writer.in_progress_size()) as u64
            }
            _ => unreachable!("a batch is prepared by the writer's own options"),
        };
        if size >= self.options.shard_bytes {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((path, sink)) = self.open.take() {
            match sink {
                Sink::Jsonl(shard) => shard.encoder.finish()?.inner.flush()?,
                Sink::Parquet(writer) => {
                    writer.close().map_err(other)?;
                }
            }
            self.finished.push(path);
        }
        Ok(())
    }

    /// Closes the last shard; returns the final paths, whose temporary files
    /// are now complete.
    pub fn finish(mut self) -> io::Result<Vec<PathBuf>> {
        self.close_current()?;
        Ok(self.finished)
    }
}

/// At most this many partitions of a unit have a shard open at once: each
/// holds a file, buffers and (JSON Lines) zstd workers, and a field with
/// thousands of values would run out of open files and memory. The least
/// recently written one is closed to make room, and its next documents
/// start a new shard.
pub const MAX_OPEN_PARTITIONS: usize = 64;

/// Shard writers for the subfolders of `output.partition_by`, opened as
/// their first document arrives. The partition `""` is the folder itself.
pub struct PartitionedWriter {
    dir: PathBuf,
    stem: String,
    options: Arc<WriterOptions>,
    /// Each partition's writer, and when it was last written to.
    writers: std::collections::BTreeMap<String, (ShardWriter, u64)>,
    writes: u64,
}

impl PartitionedWriter {
    pub fn new(dir: &Path, stem: String, options: Arc<WriterOptions>) -> PartitionedWriter {
        PartitionedWriter { dir: dir.to_owned(), stem, options, writers: Default::default(), writes: 0 }
    }

    pub fn write(&mut self, partition: &str, batch: Prepared) -> io::Result<()> {
        let opens_a_shard = self.writers.get(partition).is_none_or(|(w, _)| w.open.is_none());
        if opens_a_shard {
            let open: Vec<(&String, u64)> =
                self.writers.iter().filter(|(_, (w, _))| w.open.is_some()).map(|(name, (_, t))| (name, *t)).collect();
            if open.len() >= MAX_OPEN_PARTITIONS {
                let oldest = open.iter().min_by_key(|(_, t)| *t).map(|(name, _)| (*name).clone());
                if let Some((writer, _)) = oldest.and_then(|name| self.writers.get_mut(&name)) {
                    writer.close_current()?;
                }
            }
        }
        self.writes += 1;
        let (writer, last) = self.writers.entry(partition.to_owned()).or_insert_with(|| {
            (ShardWriter::new(&self.dir.join(partition), self.stem.clone(), self.options.clone()), 0)
        });
        *last = self.writes;
        writer.write(batch)
    }

    /// Closes every partition's last shard; returns all final paths.
    pub fn finish(self) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for (writer, _) in self.writers.into_values() {
            paths.extend(writer.finish()?);
        }
        Ok(paths)
    }
}

/// The subfolder name for a partition field's raw JSON value: strings as
/// they are, other values as their JSON text, missing or null as `unknown`;
/// anything but ASCII letters, digits, `-`, `_` and `.` becomes `_`, so a
/// value can never name a path outside the output; a name that starts with
/// a dot or is one of the output's own folders gets a `_` in front.
pub fn partition_name(raw: Option<&str>) -> String {
    const MAX_PARTITION_NAME: usize = 100;
    let value = match raw {
        None | Some("null") => return "unknown".into(),
        Some(r) if r.starts_with('"') => serde_json::from_str::<String>(r).unwrap_or_else(|_| r.to_owned()),
        Some(r) => r.to_owned(),
    };
    let mut name: String =
        value.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    // File systems refuse names over 255 bytes: a long value keeps its start,
    // and a hash of the whole value tells long values apart.
    if name.len() > MAX_PARTITION_NAME {
        name.truncate(MAX_PARTITION_NAME - 17);
        name = format!("{name}-{:016x}", xxhash_rust::xxh3::xxh3_64(value.as_bytes()));
    }
    // Hidden names (`.curate`, `..`) and the output's own folders stay free.
    if name.is_empty() || name.starts_with('.') || ["rejected", "stats", "tokens"].contains(&name.as_str()) {
        format!("_{name}")
    } else {
        name
    }
}

/// Moves finished shards from their temporary names to their final ones,
/// durably (see [`atomic::publish`]).
pub fn commit(paths: &[PathBuf]) -> Result<(), WriteError> {
    atomic::publish(paths)
}

/// Decodes JSON objects into one batch. When the whole batch does not fit
/// the schema, each record is tried alone, so one misfit costs only itself.
fn decode<B: AsRef<[u8]>>(schema: &SchemaRef, records: &[B]) -> (Option<RecordBatch>, Vec<(usize, String)>) {
    if let Ok(batch) = decode_all(schema, records.iter().map(AsRef::as_ref)) {
        return (batch, Vec::new());
    }
    let mut misfits = Vec::new();
    let mut fitting = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let r = r.as_ref();
        match decode_all(schema, std::iter::once(r)) {
            Ok(_) => fitting.push(r),
            Err(e) => misfits.push((i, e.to_string())),
        }
    }
    (decode_all(schema, fitting.into_iter()).ok().flatten(), misfits)
}

fn decode_all<'a>(
    schema: &SchemaRef,
    records: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len() + 1)
        .with_strict_mode(true)
        .with_coerce_primitive(true)
        .build_decoder()?;
    for r in records {
        decoder.decode(r)?;
        decoder.decode(b"\n")?;
    }
    decoder.flush()
}

/// A Parquet schema for documents from JSON Lines, inferred from a sample of
/// them: text and id are strings, and a field that is only ever null in the
/// sample is taken to be a string.
/// At most this many sampled records are left out of the inference for
/// conflicting with those before them; past that the rest of the sample is.
const MAX_LEFT_OUT: usize = 64;

/// The schema of a sample of records. The text and id are strings whatever
/// the records hold. A record the others do not agree with (a field that is
/// a string before and an object here, JSON that does not parse, nesting
/// too deep) is left out of the inference, the first-come types winning:
/// when written it does not fit and is counted as an `output_schema` error
/// like any later record, instead of ending the run.
pub fn infer_schema(sample: &[Vec<u8>], text_field: &str, id_field: &str) -> SchemaRef {
    let mut values: Vec<serde_json::Value> = sample
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r).ok())
        .map(|mut v| {
            // In place, so that the columns keep the order of the records' keys.
            for name in [text_field, id_field] {
                if let Some(value) = v.get_mut(name) {
                    *value = serde_json::Value::String(String::new());
                }
            }
            v
        })
        .collect();
    let infer = |values: &[serde_json::Value]| {
        arrow_json::reader::infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone())))
    };
    let mut left_out = 0;
    let inferred = loop {
        match infer(&values) {
            Ok(schema) => break schema,
            Err(_) if left_out < MAX_LEFT_OUT => {
                // The first record that the ones before it cannot take.
                let (mut ok, mut bad) = (0, values.len());
                while bad - ok > 1 {
                    let mid = (ok + bad) / 2;
                    if infer(&values[..mid]).is_ok() {
                        ok = mid;
                    } else {
                        bad = mid;
                    }
                }
                values.remove(bad - 1);
                left_out += 1;
            }
            Err(_) => break Schema::empty(),
        }
    };
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            if f.name() == text_field || f.name() == id_field || f.data_type() == &DataType::Null {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    for name in [text_field, id_field] {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, DataType::Utf8, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// The Parquet output schema for documents from a Parquet input: the input's
/// columns, with the text as a plain string column and an id column added
/// when the input has none.
pub fn schema_from_parquet(input: &Schema, text_field: &str, id_field: &str) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .map(|f| if f.name() == text_field { Field::new(text_field, DataType::Utf8, true) } else { f.as_ref().clone() })
        .collect();
    for name in [text_field, id_field] {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, DataType::Utf8, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// The schema plus annotate-mode columns: `(name, is_signal)`, a string
/// verdict or a float signal. Columns the input already has are kept as they are.
pub fn with_annotation_fields(schema: &Schema, columns: &[(String, bool)]) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (name, signal) in columns {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, if *signal { DataType::Float64 } else { DataType::Utf8 }, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// The rejected output's schema: the output's, plus the step and the reason.
pub fn with_rejection_fields(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(REJECTED_STEP, DataType::Utf8, false));
    fields.push(Field::new(REJECTED_REASON, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Field names the rejected output adds to each document.
pub const REJECTED_STEP: &str = "rejected_step";
pub const REJECTED_REASON: &str = "rejected_reason";

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 13, defect 6.
    #[test]
    fn r13_long_partition_values_get_short_distinct_names() {
        let name = |v: &str| partition_name(Some(&serde_json::to_string(v).unwrap()));
        let (a, b) = (name(&format!("{}a", "x".repeat(300))), name(&format!("{}b", "x".repeat(300))));
        assert_eq!((a.len(), b.len()), (100, 100));
        assert!(a.starts_with(&"x".repeat(83)) && a != b, "{a} {b}");
        assert_eq!(a, name(&format!("{}a", "x".repeat(300))), "the same value, the same name");
        assert_eq!(name("fr"), "fr");
        assert_eq!(name("../etc"), "_.._etc");
        assert_eq!(partition_name(None), "unknown");
    }
}
