//! What the later stages need to know of each document besides its
//! signature: its id (so that a removed copy can name the one kept) and its
//! priority (so that the kept copy can be the best one rather than the
//! first). One file per unit, written by the signature stage beside the
//! band files.
//!
//! ```text
//! WORK/signatures/docs/unit-000012.docs   for each document in unit order: f64 priority, u32 id length, id bytes
//! ```
//!
//! In the [`frame`] envelope (magic `CURATEDI`), verified when read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{read_file, DedupError, Fault};
use super::frame;

const MAGIC: &[u8; 8] = b"CURATEDI";

/// One document's id and priority (NaN when the run has no priority field
/// or the document lacks it: such a document loses every tie).
#[derive(Debug, Clone, PartialEq)]
pub struct DocInfo {
    pub id: String,
    pub priority: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    unit: u32,
    docs: u64,
    body_bytes: u64,
}

pub fn path(work: &Path, unit: usize) -> PathBuf {
    work.join("signatures").join("docs").join(format!("unit-{unit:06}.docs"))
}

pub fn encode(unit: u32, docs: &[DocInfo]) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.iter().map(|d| 12 + d.id.len()).sum());
    for d in docs {
        body.extend_from_slice(&d.priority.to_le_bytes());
        body.extend_from_slice(&(d.id.len() as u32).to_le_bytes());
        body.extend_from_slice(d.id.as_bytes());
    }
    let header = Header {
        kind: "dedup document ids and priorities".into(),
        unit,
        docs: docs.len() as u64,
        body_bytes: body.len() as u64,
    };
    frame::wrap(MAGIC, &header, &body)
}

/// Reads and verifies the file of `unit`.
pub fn read(path: &Path, unit: u32) -> Result<Vec<DocInfo>, DedupError> {
    read_file(path, |bytes| decode(bytes, unit))
}

fn decode(bytes: &[u8], unit: u32) -> Result<Vec<DocInfo>, Fault> {
    let (header, mut body) = frame::unwrap::<Header>(bytes, MAGIC, "document ids", |h| h.body_bytes as usize)?;
    if header.unit != unit {
        return Err(Fault::Mismatch(format!("for unit {}, read as unit {unit}", header.unit)));
    }
    let broken = || Fault::Malformed("a record breaks off".into());
    let mut docs = Vec::with_capacity(header.docs as usize);
    while !body.is_empty() {
        let (priority, rest) = body.split_at_checked(8).ok_or_else(broken)?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(broken)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (id, rest) = rest.split_at_checked(len).ok_or_else(broken)?;
        let id = String::from_utf8(id.to_vec())
            .map_err(|_| Fault::Malformed(format!("document {}'s id is not UTF-8", docs.len())))?;
        docs.push(DocInfo { id, priority: f64::from_le_bytes(priority.try_into().expect("8 bytes")) });
        body = rest;
    }
    if docs.len() as u64 != header.docs {
        return Err(Fault::Malformed(format!("{} documents, but its header announces {}", docs.len(), header.docs)));
    }
    Ok(docs)
}

/// A document's priority from the raw JSON of its `field`: a number, or a
/// string holding one. None when it is neither.
pub fn priority_of(raw: &str) -> Option<f64> {
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok().filter(|p: &f64| !p.is_nan()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_priorities_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u.docs");
        let docs = vec![
            DocInfo { id: "a".into(), priority: 2.5 },
            DocInfo { id: "".into(), priority: f64::NAN },
            DocInfo { id: "ünï".into(), priority: -1.0 },
        ];
        std::fs::write(&file, encode(7, &docs)).unwrap();
        let back = read(&file, 7).unwrap();
        assert_eq!(back.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a", "", "ünï"]);
        assert_eq!((back[0].priority, back[2].priority), (2.5, -1.0));
        assert!(back[1].priority.is_nan());
        assert!(read(&file, 8).unwrap_err().to_string().contains("written for unit 7"));
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        let err = read(&file, 7).unwrap_err().to_string();
        assert!(err.contains("u.docs") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn priorities_are_numbers_or_numeric_strings() {
        assert_eq!(priority_of("3"), Some(3.0));
        assert_eq!(priority_of("-0.25"), Some(-0.25));
        assert_eq!(priority_of("\" 12 \""), Some(12.0));
        assert_eq!(priority_of("\"high\""), None);
        assert_eq!(priority_of("null"), None);
        assert_eq!(priority_of("[1]"), None);
    }
}
