//! Final token shards of one split: tokenized Parquet and Megatron
//! `.bin/.idx` side by side, the same documents in the same order, rolled at
//! a token count. Files are written under temporary names and renamed when
//! the shard is closed.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray, UInt16Array, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use curate_shards::{datatrove, loss_mask, megatron, parquet_columns, ShardInfo, Split, TokenWidth};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::spill::Record;
use crate::io::atomic::{self, temp_path};

/// Rows buffered before they become one Arrow batch.
const PARQUET_BATCH_ROWS: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub struct Formats {
    pub parquet: bool,
    pub megatron: bool,
    pub datatrove: bool,
    /// A loss mask goes with the tokens (a Parquet column, a `.mask.bin`).
    pub loss_mask: bool,
}

impl Formats {
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.parquet {
            names.push("parquet".to_owned());
        }
        if self.megatron {
            names.push("megatron".to_owned());
        }
        if self.datatrove {
            names.push("datatrove".to_owned());
        }
        names
    }
}

/// The tokenized Parquet schema: id, tokens, num_tokens, the loss mask of
/// chat data, then the requested metadata fields as strings.
pub fn parquet_schema(width: TokenWidth, with_mask: bool, metadata: &[String]) -> SchemaRef {
    let item = match width {
        TokenWidth::U16 => DataType::UInt16,
        TokenWidth::U32 => DataType::UInt32,
    };
    let mut fields = vec![
        Field::new(parquet_columns::ID, DataType::Utf8, false),
        Field::new(parquet_columns::TOKENS, DataType::List(Arc::new(Field::new("item", item, false))), false),
        Field::new(parquet_columns::NUM_TOKENS, DataType::UInt32, false),
    ];
    if with_mask {
        let item = Arc::new(Field::new("item", DataType::UInt8, false));
        fields.push(Field::new(parquet_columns::LOSS_MASK, DataType::List(item), false));
    }
    fields.extend(metadata.iter().map(|m| Field::new(m, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

struct OpenShard {
    name: String,
    files: Vec<PathBuf>,
    parquet: Option<ArrowWriter<File>>,
    pending: Vec<Record>,
    megatron: Option<megatron::Writer>,
    mask: Option<loss_mask::Writer>,
    datatrove: Option<datatrove::Writer>,
    docs: u64,
    tokens: u64,
}

pub struct ShardSetWriter {
    dir: PathBuf,
    split: Split,
    width: TokenWidth,
    formats: Formats,
    shard_tokens: u64,
    with_mask: bool,
    schema: SchemaRef,
    level: i32,
    /// Named in datatrove's metadata files.
    tokenizer_name: String,
    current: Option<OpenShard>,
    pub shards: Vec<ShardInfo>,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl ShardSetWriter {
    pub fn new(
        dir: &Path,
        split: Split,
        width: TokenWidth,
        formats: Formats,
        shard_tokens: u64,
        metadata: &[String],
        tokenizer_name: &str,
    ) -> Self {
        ShardSetWriter {
            dir: dir.to_owned(),
            split,
            width,
            formats,
            shard_tokens,
            with_mask: formats.loss_mask,
            schema: parquet_schema(width, formats.loss_mask, metadata),
            level: 3,
            tokenizer_name: tokenizer_name.to_owned(),
            current: None,
            shards: Vec::new(),
        }
    }

    fn open(&mut self) -> io::Result<OpenShard> {
        let name = format!("{}-{:05}", self.split.as_str(), self.shards.len());
        let mut shard = OpenShard {
            name: name.clone(),
            files: Vec::new(),
            parquet: None,
            pending: Vec::new(),
            megatron: None,
            mask: None,
            datatrove: None,
            docs: 0,
            tokens: 0,
        };
        if self.formats.parquet {
            let path = self.dir.join(format!("{name}.parquet"));
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.level).map_err(other)?))
                .build();
            shard.parquet = Some(
                ArrowWriter::try_new(File::create(temp_path(&path))?, self.schema.clone(), Some(props))
                    .map_err(other)?,
            );
            shard.files.push(path);
        }
        if self.formats.megatron {
            let (bin, idx) = (self.dir.join(format!("{name}.bin")), self.dir.join(format!("{name}.idx")));
            shard.megatron = Some(megatron::Writer::create(&temp_path(&bin), &temp_path(&idx), self.width)?);
            if self.with_mask {
                let mask = loss_mask::path_beside(&bin);
                shard.mask = Some(loss_mask::Writer::create(&temp_path(&mask))?);
                shard.files.push(mask);
            }
            shard.files.extend([bin, idx]);
        }
        if self.formats.datatrove {
            let ds = self.dir.join(format!("{name}.ds"));
            let (index, metadata) = datatrove::companions(&ds);
            shard.datatrove = Some(datatrove::Writer::create(
                &temp_path(&ds),
                &temp_path(&index),
                &temp_path(&metadata),
                self.width,
                &self.tokenizer_name,
            )?);
            shard.files.extend([ds, index, metadata]);
        }
        Ok(shard)
    }

    pub fn add(&mut self, record: Record) -> io::Result<()> {
        let record_pair = record.pair;
        if self.current.is_none() {
            self.current = Some(self.open()?);
        }
        let shard = self.current.as_mut().expect("opened above");
        shard.docs += 1;
        shard.tokens += record.tokens.len() as u64;
        if let Some(m) = shard.megatron.as_mut() {
            m.add(&record.tokens)?;
        }
        if let Some(m) = shard.mask.as_mut() {
            m.add(&record.mask)?;
        }
        if let Some(d) = shard.datatrove.as_mut() {
            d.add(&record.tokens)?;
        }
        if shard.parquet.is_some() {
            shard.pending.push(record);
            if shard.pending.len() >= PARQUET_BATCH_ROWS {
                flush(shard, &self.schema, self.width)?;
            }
        }
        if shard.tokens >= self.shard_tokens && record_pair != super::spill::Pair::First {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let Some(mut shard) = self.current.take() else { return Ok(()) };
        flush(&mut shard, &self.schema, self.width)?;
        if let Some(w) = shard.parquet.take() {
            w.close().map_err(other)?;
        }
        if let Some(m) = shard.megatron.take() {
            m.finish()?;
        }
        if let Some(m) = shard.mask.take() {
            m.finish()?;
        }
        if let Some(d) = shard.datatrove.take() {
            d.finish()?;
        }
        atomic::publish(&shard.files).map_err(io::Error::other)?;
        self.shards.push(ShardInfo { split: self.split, name: shard.name, docs: shard.docs, tokens: shard.tokens });
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<Vec<ShardInfo>> {
        self.close()?;
        Ok(self.shards)
    }
}

fn flush(shard: &mut OpenShard, schema: &SchemaRef, width: TokenWidth) -> io::Result<()> {
    let Some(writer) = shard.parquet.as_mut() else { return Ok(()) };
    if shard.pending.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(&mut shard.pending);
    let ids = StringArray::from_iter_values(rows.iter().map(|r| r.id.as_str()));
    let lengths: Vec<usize> = rows.iter().map(|r| r.tokens.len()).collect();
    let flat = rows.iter().flat_map(|r| r.tokens.iter().copied());
    let values: ArrayRef = match width {
        // Ids were checked against the vocabulary, which fits the width.
        TokenWidth::U16 => Arc::new(UInt16Array::from_iter_values(flat.map(|t| t as u16))),
        TokenWidth::U32 => Arc::new(UInt32Array::from_iter_values(flat)),
    };
    let DataType::List(item) = schema.field(1).data_type() else { unreachable!("tokens is a list") };
    let tokens = ListArray::try_new(
        item.clone(),
        arrow_buffer::OffsetBuffer::from_lengths(lengths.iter().copied()),
        values,
        None,
    )
    .map_err(other)?;
    let counts = UInt32Array::from_iter_values(lengths.iter().map(|&n| n as u32));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(tokens), Arc::new(counts)];
    let with_mask = schema.fields().len() > 3 && schema.field(3).name() == parquet_columns::LOSS_MASK;
    if with_mask {
        let DataType::List(item) = schema.field(3).data_type() else { unreachable!("loss_mask is a list") };
        let values = arrow_array::UInt8Array::from_iter_values(rows.iter().flat_map(|r| r.mask.iter().copied()));
        let masks = ListArray::try_new(
            item.clone(),
            arrow_buffer::OffsetBuffer::from_lengths(rows.iter().map(|r| r.mask.len())),
            Arc::new(values),
            None,
        )
        .map_err(other)?;
        columns.push(Arc::new(masks));
    }
    for i in 0..schema.fields().len() - columns.len() {
        columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| r.metadata[i].as_deref()))));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(other)?;
    writer.write(&batch).map_err(other)
}
