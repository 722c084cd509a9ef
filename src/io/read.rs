//! Streaming a unit's documents in bounded batches.
//!
//! Reading (decompression, line splitting) is sequential per unit; parsing a
//! batch's records is spread over the rayon pool, so one huge compressed
//! file still keeps every core busy.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use rayon::prelude::*;

use super::doc::{Doc, DocError, ErrorKind, FieldNames, RawObject};
use super::format::{Compression, InputFormat};
use super::plan::{InputFile, Span, Unit};

/// Where in a file a record (or a failure) sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// `line` counts from 1 within the unit; `offset` is the line's first
    /// byte in the decompressed file.
    Line {
        offset: u64,
        line: u64,
    },
    Row(u64),
    /// A WARC record, numbered from 1, at its offset in the decompressed file.
    Record {
        offset: u64,
        number: u64,
    },
    File,
}

/// A record that did not become a document; `count` is how many input
/// documents it stands for (the rest of a Parquet row group that fails to
/// decode is counted whole, so nothing vanishes).
#[derive(Debug, Clone)]
pub struct RecordError {
    pub error: DocError,
    pub at: Where,
    pub count: u64,
}

pub type Record = Result<Doc, RecordError>;

pub struct ReadOptions {
    pub names: FieldNames,
    pub batch_size: usize,
    pub batch_bytes: usize,
}

pub trait UnitReader: Send {
    /// The next batch of records in input order, `None` at the end.
    fn next_batch(&mut self) -> Option<Vec<Record>>;
    /// Input bytes consumed so far, for progress.
    fn bytes_read(&self) -> u64;
}

pub fn open(file: &InputFile, unit: &Unit, options: Arc<ReadOptions>) -> Box<dyn UnitReader> {
    match file.format {
        InputFormat::Jsonl => Box::new(JsonlReader::open(file, unit, options)),
        InputFormat::Parquet => Box::new(ParquetReader::open(file, unit, options)),
        InputFormat::Warc => Box::new(super::warc::WarcReader::open(file, unit, options)),
    }
}

/// A whole file's bytes, decompressed by its extension, with the
/// compressed bytes read counted into `count` (for progress).
pub(crate) fn decompressed(file: &InputFile, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>, RecordError> {
    let fail = |message: String| RecordError {
        error: DocError::new(ErrorKind::UnreadableFile, message),
        at: Where::File,
        count: 1,
    };
    if let Some(why) = &file.unlisted {
        return Err(fail(format!("cannot list the folder: {why}")));
    }
    let handle = file.open().map_err(|e| fail(format!("cannot open: {e}")))?;
    let counted = Counting { inner: handle, count };
    const BUF: usize = 1 << 20;
    Ok(match file.compression {
        Compression::None => Box::new(BufReader::with_capacity(BUF, counted)),
        Compression::Gzip => {
            Box::new(BufReader::with_capacity(BUF, flate2::read::MultiGzDecoder::new(BufReader::new(counted))))
        }
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(counted).map_err(|e| fail(format!("cannot start zstd: {e}")))?;
            Box::new(BufReader::with_capacity(BUF, d))
        }
    })
}

/// The documents of the first batch of each of the first `files` files:
/// what the output schema is inferred from and fields are checked against
/// before any work (bad records left out).
pub fn sample(plan: &super::plan::Plan, options: &Arc<ReadOptions>, files: usize) -> Vec<Doc> {
    let mut sample = Vec::new();
    let mut sampled = std::collections::HashSet::new();
    for unit in &plan.units {
        if sampled.len() == files {
            break;
        }
        if !sampled.insert(unit.file) {
            continue;
        }
        let mut reader = open(&plan.files[unit.file], unit, options.clone());
        if let Some(batch) = reader.next_batch() {
            sample.extend(batch.into_iter().filter_map(Result::ok));
        }
    }
    sample
}

/// A human-readable location: `path:line`, `path: row N` or `path`. Lines of
/// a byte range that does not start the file are numbered by counting the
/// newlines before them, which is done here (for the few locations that are
/// reported) rather than for every line.
pub fn describe(at: Where, file: &InputFile, unit: &Unit) -> String {
    match at {
        Where::File => file.path.display().to_string(),
        Where::Row(row) => format!("{}: row {row}", file.path.display()),
        Where::Record { offset, number } => format!("{}: record {number} (byte {offset})", file.path.display()),
        Where::Line { offset, line } => match unit.span {
            Span::Bytes { start, .. } if start > 0 => match newlines_before(file, offset) {
                Ok(n) => format!("{}:{}", file.path.display(), n + 1),
                Err(_) => format!("{}: byte {offset}", file.path.display()),
            },
            _ => format!("{}:{line}", file.path.display()),
        },
    }
}

fn newlines_before(file: &InputFile, offset: u64) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, file.open()?.take(offset));
    let mut count = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += memchr::memchr_iter(b'\n', buf).count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Counts the bytes that pass, compressed, from the file.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

struct JsonlReader {
    source: Option<Box<dyn BufRead + Send>>,
    /// Offset of the next line in the decompressed stream.
    pos: u64,
    /// Lines starting at or after this offset belong to the next unit.
    end: Option<u64>,
    line: u64,
    options: Arc<ReadOptions>,
    name: Arc<str>,
    count: Arc<AtomicU64>,
    /// A failure to report with the next batch.
    pending: Option<RecordError>,
    buf: Vec<u8>,
}

impl JsonlReader {
    fn open(file: &InputFile, unit: &Unit, options: Arc<ReadOptions>) -> JsonlReader {
        let count = Arc::new(AtomicU64::new(0));
        let mut reader = JsonlReader {
            source: None,
            pos: 0,
            end: None,
            line: 0,
            options,
            name: file.name.as_str().into(),
            count: count.clone(),
            pending: None,
            buf: Vec::new(),
        };
        let (Compression::None, Span::Bytes { start, end }) = (file.compression, unit.span) else {
            match decompressed(file, count) {
                Ok(source) => reader.source = Some(source),
                Err(e) => reader.pending = Some(e),
            }
            return reader;
        };
        // A byte range of a plain file: it starts after the line that
        // straddles `start` (which belongs to the unit before) and ends
        // with the line that straddles `end`.
        let file_error = |e: io::Error, what: &str| RecordError {
            error: DocError::new(ErrorKind::UnreadableFile, format!("cannot {what}: {e}")),
            at: Where::File,
            count: 1,
        };
        let opened = file.open().and_then(|mut f| {
            f.seek(SeekFrom::Start(start.saturating_sub(1)))?;
            Ok(f)
        });
        let handle = match opened {
            Ok(f) => f,
            Err(e) => {
                reader.pending = Some(file_error(e, "open"));
                return reader;
            }
        };
        let mut r = BufReader::with_capacity(1 << 20, Counting { inner: handle, count });
        reader.end = Some(end);
        if start > 0 {
            // Skip to just past the newline at or after start-1.
            let mut skipped = Vec::new();
            match r.read_until(b'\n', &mut skipped) {
                Ok(n) => reader.pos = start - 1 + n as u64,
                Err(e) => {
                    reader.pending = Some(file_error(e, "read"));
                    return reader;
                }
            }
        }
        reader.source = Some(Box::new(r));
        reader
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl UnitReader for JsonlReader {
    fn next_batch(&mut self) -> Option<Vec<Record>> {
        let Some(source) = self.source.as_mut() else {
            return self.pending.take().map(|e| vec![Err(e)]);
        };
        // (offset, line, start, end) of each record in `buf`.
        let mut spans: Vec<(u64, u64, usize, usize)> = Vec::new();
        self.buf.clear();
        let mut finished = false;
        while spans.len() < self.options.batch_size && self.buf.len() < self.options.batch_bytes {
            if self.end.is_some_and(|end| self.pos >= end) {
                finished = true;
                break;
            }
            let start = self.buf.len();
            match source.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    finished = true;
                    break;
                }
                Ok(n) => {
                    let offset = self.pos;
                    self.pos += n as u64;
                    self.line += 1;
                    // A byte order mark before the first line (editors on
                    // Windows write one) is not part of the record.
                    let from = if offset == 0 && self.buf[start..].starts_with(UTF8_BOM) { start + 3 } else { start };
                    if self.buf[from..].iter().all(u8::is_ascii_whitespace) {
                        self.buf.truncate(start);
                    } else {
                        spans.push((offset, self.line, from, self.buf.len()));
                    }
                }
                Err(e) => {
                    self.buf.truncate(start);
                    self.pending = Some(RecordError {
                        error: DocError::new(
                            ErrorKind::CorruptInput,
                            format!("input breaks off after line {} (truncated or corrupt): {e}", self.line),
                        ),
                        at: Where::Line { offset: self.pos, line: self.line + 1 },
                        count: 1,
                    });
                    finished = true;
                    break;
                }
            }
        }
        if finished {
            self.source = None;
        }
        let (buf, names, name) = (&self.buf, &self.options.names, &self.name);
        let mut records: Vec<Record> = spans
            .par_iter()
            .map(|&(offset, line, start, end)| {
                Doc::from_json_line(&buf[start..end], names, offset, || format!("{name}#{offset}"))
                    .map_err(|error| RecordError { error, at: Where::Line { offset, line }, count: 1 })
            })
            .collect();
        if finished {
            records.extend(self.pending.take().map(Err));
        }
        if records.is_empty() && finished {
            return None;
        }
        Some(records)
    }

    fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

struct ParquetReader {
    batches: Option<ParquetRecordBatchReader>,
    first_row: u64,
    next_row: u64,
    end_row: u64,
    options: Arc<ReadOptions>,
    name: Arc<str>,
    pending: Option<RecordError>,
    bytes: u64,
    unit_bytes: u64,
}

impl ParquetReader {
    fn open(file: &InputFile, unit: &Unit, options: Arc<ReadOptions>) -> ParquetReader {
        let (group, first_row, rows) = match unit.span {
            Span::RowGroup { index, first_row, rows } => (Some(index), first_row, rows),
            _ => (None, 0, 0),
        };
        let mut reader = ParquetReader {
            batches: None,
            first_row,
            next_row: first_row,
            end_row: first_row + rows,
            options,
            name: file.name.as_str().into(),
            pending: None,
            bytes: 0,
            unit_bytes: unit.bytes,
        };
        let fail = |kind, message: String| RecordError {
            error: DocError::new(kind, message),
            at: Where::File,
            count: rows.max(1),
        };
        let handle = match file.open() {
            Ok(f) => f,
            Err(e) => {
                reader.pending = Some(fail(ErrorKind::UnreadableFile, format!("cannot open: {e}")));
                return reader;
            }
        };
        let built = ParquetRecordBatchReaderBuilder::try_new(handle).and_then(|b| {
            let rows_in_file = b.metadata().file_metadata().num_rows().max(0) as u64;
            let b = b.with_batch_size(reader.options.batch_size);
            match group {
                Some(g) => b.with_row_groups(vec![g]).build(),
                None => {
                    reader.end_row = rows_in_file;
                    b.build()
                }
            }
        });
        match built {
            Ok(batches) => reader.batches = Some(batches),
            Err(e) => reader.pending = Some(fail(ErrorKind::CorruptInput, format!("not a readable Parquet file: {e}"))),
        }
        reader
    }

    fn convert(&self, batch: &RecordBatch) -> Vec<Record> {
        let names = &self.options.names;
        let first = self.next_row;
        let rows = batch.num_rows();
        let all_fail = |kind, message: String| -> Vec<Record> {
            (0..rows as u64)
                .map(|i| {
                    Err(RecordError {
                        error: DocError::new(kind, message.clone()),
                        at: Where::Row(first + i),
                        count: 1,
                    })
                })
                .collect()
        };
        if names.raw_text {
            return self.raw_text_rows(batch, names, all_fail);
        }
        let Ok(text_pos) = batch.schema().index_of(&names.text) else {
            return all_fail(ErrorKind::MissingText, format!("no column {:?}", names.text));
        };
        let column = batch.column(text_pos);
        let string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let text = match column.data_type() {
            // Strings, or strings dictionary-encoded (as pandas and Spark
            // write repetitive columns).
            t if string(t) || matches!(t, DataType::Dictionary(_, value) if string(value)) => {
                match arrow_cast::cast(column, &DataType::Utf8) {
                    Ok(a) => a,
                    Err(e) => return all_fail(ErrorKind::CorruptInput, format!("column {:?}: {e}", names.text)),
                }
            }
            other => {
                return all_fail(ErrorKind::TextNotString, format!("column {:?} is {other}, not a string", names.text))
            }
        };
        let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8 gives a StringArray");
        let mut rest = batch.clone();
        rest.remove_column(text_pos);
        let lines = match fields_as_json(&rest) {
            Ok(lines) => lines,
            Err(e) => return all_fail(ErrorKind::CorruptInput, format!("cannot carry the other columns: {e}")),
        };
        let name = &self.name;
        (0..rows)
            .into_par_iter()
            .map(|i| {
                let row = first + i as u64;
                let fail = |kind, message: String| RecordError {
                    error: DocError::new(kind, message),
                    at: Where::Row(row),
                    count: 1,
                };
                if text.is_null(i) {
                    return Err(fail(ErrorKind::MissingText, format!("column {:?} is null", names.text)));
                }
                let fields = match &lines {
                    Some(JsonRows { buf, ends }) => {
                        let start = if i == 0 { 0 } else { ends[i - 1] };
                        match serde_json::from_slice::<RawObject>(&buf[start..ends[i]]) {
                            Ok(RawObject(fields)) => fields,
                            Err(e) => {
                                return Err(fail(
                                    ErrorKind::CorruptInput,
                                    format!("cannot carry the other columns: {e}"),
                                ))
                            }
                        }
                    }
                    None => Vec::new(),
                };
                Ok(Doc::assemble(fields, text.value(i).to_owned(), text_pos, names, row, || format!("{name}#{row}")))
            })
            .collect()
    }
}

/// Rows as JSON objects in one buffer; row `i` ends at `ends[i]`.
struct JsonRows {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

/// The batch's rows as JSON objects (nulls written out, so that the output
/// keeps every column), and the end of each row in the buffer. `None` when
/// there are no columns to carry.
impl ParquetReader {
    /// Rows for [`FieldNames::raw_text`]: every column becomes JSON, and the
    /// text column's value (absent: empty) is taken out of it as the text.
    fn raw_text_rows(
        &self,
        batch: &RecordBatch,
        names: &crate::io::doc::FieldNames,
        all_fail: impl Fn(ErrorKind, String) -> Vec<Record>,
    ) -> Vec<Record> {
        let first = self.next_row;
        let text_pos = batch.schema().index_of(&names.text).ok();
        let lines = match fields_as_json(batch) {
            Ok(lines) => lines,
            Err(e) => return all_fail(ErrorKind::CorruptInput, format!("cannot read the columns as JSON: {e}")),
        };
        let name = &self.name;
        (0..batch.num_rows())
            .into_par_iter()
            .map(|i| {
                let row = first + i as u64;
                let mut fields = match &lines {
                    Some(JsonRows { buf, ends }) => {
                        let start = if i == 0 { 0 } else { ends[i - 1] };
                        match serde_json::from_slice::<RawObject>(&buf[start..ends[i]]) {
                            Ok(RawObject(fields)) => fields,
                            Err(e) => {
                                return Err(RecordError {
                                    error: DocError::new(ErrorKind::CorruptInput, format!("columns as JSON: {e}")),
                                    at: Where::Row(row),
                                    count: 1,
                                })
                            }
                        }
                    }
                    None => Vec::new(),
                };
                // arrow-json leaves out nulls, so the column may be missing from a row.
                let (text, pos) = match fields.iter().position(|(k, _)| *k == names.text) {
                    Some(at) => (fields.remove(at).1.get().to_owned(), at),
                    None => (String::new(), text_pos.unwrap_or(fields.len()).min(fields.len())),
                };
                Ok(Doc::assemble(fields, text, pos, names, row, || format!("{name}#{row}")))
            })
            .collect()
    }
}

fn fields_as_json(batch: &RecordBatch) -> Result<Option<JsonRows>, arrow_schema::ArrowError> {
    if batch.num_columns() == 0 {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    let ends: Vec<usize> = memchr::memchr_iter(b'\n', &buf).map(|i| i + 1).collect();
    if ends.len() != batch.num_rows() {
        return Err(arrow_schema::ArrowError::JsonError(format!(
            "{} JSON rows for {} rows",
            ends.len(),
            batch.num_rows()
        )));
    }
    Ok(Some(JsonRows { buf, ends }))
}

impl UnitReader for ParquetReader {
    fn next_batch(&mut self) -> Option<Vec<Record>> {
        let Some(batches) = self.batches.as_mut() else {
            return self.pending.take().map(|e| vec![Err(e)]);
        };
        match batches.next() {
            Some(Ok(batch)) => {
                let records = self.convert(&batch);
                self.next_row += batch.num_rows() as u64;
                let (read, total) =
                    (self.next_row - self.first_row, self.end_row.saturating_sub(self.first_row).max(1));
                self.bytes = self.unit_bytes * read.min(total) / total;
                Some(records)
            }
            Some(Err(e)) => {
                self.batches = None;
                let lost = self.end_row.saturating_sub(self.next_row).max(1);
                Some(vec![Err(RecordError {
                    error: DocError::new(
                        ErrorKind::CorruptInput,
                        format!("Parquet data does not decode ({lost} rows lost): {e}"),
                    ),
                    at: Where::Row(self.next_row),
                    count: lost,
                })])
            }
            None => {
                self.batches = None;
                if self.next_row < self.end_row {
                    let lost = self.end_row - self.next_row;
                    return Some(vec![Err(RecordError {
                        error: DocError::new(
                            ErrorKind::CorruptInput,
                            format!("{lost} rows promised by the footer are missing"),
                        ),
                        at: Where::Row(self.next_row),
                        count: lost,
                    })]);
                }
                None
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}
