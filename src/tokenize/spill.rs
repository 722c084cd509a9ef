//! Spill files: tokenized documents between the parallel encoding pass and
//! the pass that orders them into final shards.
//!
//! One file per unit of input and shuffle bucket, written under a temporary
//! name and renamed when the unit is done, so a killed run re-encodes only
//! unfinished units. Files are self-describing (magic, version) and checked
//! when read back; a damaged one is an error naming the file.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use curate_shards::Split;

const MAGIC: &[u8; 8] = b"CURSPL02";

/// One tokenized document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Shuffle key (a hash of the seed and the id); 0 when not shuffling.
    pub key: u64,
    /// Position in the input: unit, then document within the unit. Orders
    /// documents when not shuffling, and breaks ties between equal keys.
    pub unit: u32,
    pub seq: u64,
    pub split: Split,
    pub id: String,
    /// Metadata carried to Parquet shards: one value per requested field,
    /// as text (JSON strings unquoted, other values as JSON).
    pub metadata: Vec<Option<String>>,
    pub tokens: Vec<u32>,
    /// Chat data: per token, 1 when trained on; empty otherwise.
    pub mask: Vec<u8>,
    /// Which half of a preference pair this is, if any.
    pub pair: Pair,
}

/// The halves of a preference pair travel together: a shard never ends
/// between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    None,
    /// The chosen completion.
    First,
    /// The rejected one.
    Second,
}

pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Writer> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Writer { out })
    }

    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        let o = &mut self.out;
        o.write_all(&r.key.to_le_bytes())?;
        o.write_all(&r.unit.to_le_bytes())?;
        o.write_all(&r.seq.to_le_bytes())?;
        o.write_all(&[matches!(r.split, Split::Validation) as u8])?;
        write_bytes(o, r.id.as_bytes())?;
        o.write_all(&(r.metadata.len() as u32).to_le_bytes())?;
        for m in &r.metadata {
            match m {
                Some(v) => {
                    o.write_all(&[1])?;
                    write_bytes(o, v.as_bytes())?;
                }
                None => o.write_all(&[0])?,
            }
        }
        o.write_all(&(r.tokens.len() as u32).to_le_bytes())?;
        for t in &r.tokens {
            o.write_all(&t.to_le_bytes())?;
        }
        write_bytes(o, &r.mask)?;
        o.write_all(&[r.pair as u8])
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn write_bytes(o: &mut impl Write, b: &[u8]) -> io::Result<()> {
    o.write_all(&(b.len() as u32).to_le_bytes())?;
    o.write_all(b)
}

pub struct Reader {
    input: BufReader<File>,
    path: PathBuf,
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: damaged spill file: {what}", path.display()))
}

impl Reader {
    pub fn open(path: &Path) -> io::Result<Reader> {
        let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|_| corrupt(path, "too short"))?;
        if &magic != MAGIC {
            return Err(corrupt(path, "wrong magic or version"));
        }
        Ok(Reader { input, path: path.to_owned() })
    }

    /// The next record, `None` at a clean end; a record cut short is an error.
    pub fn read_record(&mut self) -> io::Result<Option<Record>> {
        let mut key = [0u8; 8];
        match self.input.read(&mut key[..1])? {
            0 => return Ok(None),
            _ => self.input.read_exact(&mut key[1..]).map_err(|_| corrupt(&self.path, "record cut short"))?,
        }
        self.rest(u64::from_le_bytes(key)).map(Some).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(&self.path, "record cut short")
            } else {
                e
            }
        })
    }

    fn rest(&mut self, key: u64) -> io::Result<Record> {
        let unit = u32::from_le_bytes(self.array()?);
        let seq = u64::from_le_bytes(self.array()?);
        let split = if self.array::<1>()?[0] == 1 { Split::Validation } else { Split::Train };
        let id = self.string()?;
        let n = u32::from_le_bytes(self.array()?) as usize;
        let mut metadata = Vec::with_capacity(n);
        for _ in 0..n {
            metadata.push(if self.array::<1>()?[0] == 1 { Some(self.string()?) } else { None });
        }
        let n = u32::from_le_bytes(self.array()?) as usize;
        let mut bytes = vec![0u8; n * 4];
        self.input.read_exact(&mut bytes)?;
        let tokens = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        let n = u32::from_le_bytes(self.array()?) as usize;
        let mut mask = vec![0u8; n];
        self.input.read_exact(&mut mask)?;
        let pair = match self.array::<1>()?[0] {
            0 => Pair::None,
            1 => Pair::First,
            2 => Pair::Second,
            _ => return Err(corrupt(&self.path, "a pair marker is not 0, 1 or 2")),
        };
        Ok(Record { key, unit, seq, split, id, metadata, tokens, mask, pair })
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.input.read_exact(&mut b)?;
        Ok(b)
    }

    fn string(&mut self) -> io::Result<String> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        let mut b = vec![0u8; n];
        self.input.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| corrupt(&self.path, "a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.spill");
        let records = vec![
            Record {
                key: 7,
                unit: 1,
                seq: 0,
                split: Split::Train,
                id: "a".into(),
                metadata: vec![Some("x".into()), None],
                tokens: vec![1, 70000],
                mask: vec![0, 1],
                pair: Pair::First,
            },
            Record {
                key: 3,
                unit: 1,
                seq: 1,
                split: Split::Validation,
                id: "ü".into(),
                metadata: vec![None, None],
                tokens: vec![],
                mask: vec![],
                pair: Pair::None,
            },
        ];
        let mut w = Writer::create(&path).unwrap();
        for r in &records {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        let mut r = Reader::open(&path).unwrap();
        assert_eq!(r.read_record().unwrap().as_ref(), Some(&records[0]));
        assert_eq!(r.read_record().unwrap().as_ref(), Some(&records[1]));
        assert_eq!(r.read_record().unwrap(), None);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let mut r = Reader::open(&path).unwrap();
        r.read_record().unwrap();
        assert!(r.read_record().unwrap_err().to_string().ends_with("a.spill: damaged spill file: record cut short"));
        std::fs::write(&path, b"NOTSPILL").unwrap();
        assert!(Reader::open(&path).err().unwrap().to_string().contains("wrong magic"));
    }
}
