//! The envelope of dedup's intermediate files: a magic number naming the
//! kind, a version, a JSON header, fixed-size records, and a checksum of
//! everything before it.
//!
//! ```text
//! magic (8 bytes) · u32 version · u32 header length · header (JSON) · records · u64 xxh3
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use super::error::Fault;

pub const VERSION: u32 = 1;

/// A file's bytes: the envelope around `header` and `body`.
pub fn wrap(magic: &[u8; 8], header: &impl Serialize, body: &[u8]) -> Vec<u8> {
    let head = serde_json::to_vec(header).expect("serialisable");
    let mut out = Vec::with_capacity(24 + head.len() + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// How many bytes a file's magic, version and header take, from its first
/// 16 bytes (`start`), once the magic and version hold.
pub fn header_end(start: &[u8], magic: &[u8; 8], what: &'static str) -> Result<usize, Fault> {
    if start.len() < 16 || &start[..8] != magic {
        return Err(Fault::NotThisKind { what, magic: String::from_utf8_lossy(magic).into_owned() });
    }
    let u32_at = |at: usize| u32::from_le_bytes(start[at..at + 4].try_into().expect("4 bytes"));
    let version = u32_at(8);
    if version != VERSION {
        return Err(Fault::Version { what, found: version });
    }
    Ok(16 + u32_at(12) as usize)
}

/// The JSON header of a file whose first `header_end` bytes are `head`.
pub fn parse_header<H: DeserializeOwned>(head: &[u8]) -> Result<H, Fault> {
    serde_json::from_slice(&head[16..]).map_err(Fault::Header)
}

/// The header and the record bytes of a file of kind `magic` (`what` names
/// the kind in errors), once the magic, version, length and checksum hold.
/// `body_len` tells, from the header, how many bytes of records it announces.
pub fn unwrap<'a, H: DeserializeOwned>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &'static str,
    body_len: impl Fn(&H) -> usize,
) -> Result<(H, &'a [u8]), Fault> {
    let head_end = header_end(bytes, magic, what)?;
    if bytes.len() < head_end + 8 {
        return Err(Fault::TruncatedHeader);
    }
    let header: H = parse_header(&bytes[..head_end])?;
    let want = head_end + body_len(&header) + 8;
    if bytes.len() != want {
        return Err(Fault::Length { found: bytes.len() as u64, announced: want as u64 });
    }
    let stored = u64::from_le_bytes(bytes[want - 8..].try_into().expect("8 bytes"));
    if xxh3_64(&bytes[..want - 8]) != stored {
        return Err(Fault::Checksum);
    }
    Ok((header, &bytes[head_end..want - 8]))
}
