//! WARC and WET files (`.warc`, `.wet`, gzip'd record by record as Common
//! Crawl writes them, or zstd'd) as input, one document per record worth
//! reading, as datatrove's `WarcReader` takes them:
//!
//! - a `response` record whose payload is HTML (by `WARC-Identified-Payload-Type`,
//!   else the HTTP `Content-Type`; a record that declares neither is read as
//!   HTML): the HTTP body, de-chunked and decoded (gzip, deflate, br) as
//!   warcio's `content_stream` decodes it, converted to UTF-8 from its
//!   charset (the HTTP header's, else a `<meta>` in its first 1024 bytes,
//!   else UTF-8 when it is valid UTF-8, else detected);
//! - a `conversion` record (WET's extracted text), as it is.
//!
//! Other records (`warcinfo`, `request`, `metadata`, `revisit`, responses
//! that are images or PDFs, and any record over 64 MiB, which is read
//! through without being held) are not documents and are passed over. Each
//! document has the record's id as its id and carries `url`,
//! `warc_record_id`, `date`, `content_type` and `html_length` (the decoded
//! payload's bytes). A record cut short, or bytes that are not a WARC
//! record, end the file as a counted error naming the record and its
//! offset; the documents before it are kept.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::value::RawValue;

use super::doc::{json_string, Doc, DocError, ErrorKind};
use super::plan::{InputFile, Unit};
use super::read::{decompressed, Record, RecordError, UnitReader, Where};

/// Records longer than this are read through, not kept: no web page is
/// this large, and a crawl's videos and archives are not documents.
const MAX_BLOCK: u64 = 64 << 20;

/// One WARC record as stored: where it starts, its headers, its block.
struct RawRecord {
    offset: u64,
    headers: Vec<(String, String)>,
    block: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub struct WarcReader {
    source: Option<Box<dyn BufRead + Send>>,
    /// Offset of the next byte in the decompressed stream.
    pos: u64,
    /// Records read so far.
    number: u64,
    options: Arc<super::read::ReadOptions>,
    count: Arc<AtomicU64>,
    pending: Option<RecordError>,
}

impl WarcReader {
    pub fn open(file: &InputFile, _unit: &Unit, options: Arc<super::read::ReadOptions>) -> WarcReader {
        let count = Arc::new(AtomicU64::new(0));
        let mut reader = WarcReader { source: None, pos: 0, number: 0, options, count: count.clone(), pending: None };
        match decompressed(file, count) {
            Ok(source) => reader.source = Some(source),
            Err(e) => reader.pending = Some(e),
        }
        reader
    }

    fn corrupt(&self, offset: u64, message: String) -> RecordError {
        RecordError {
            error: DocError::new(ErrorKind::CorruptInput, message),
            at: Where::Record { offset, number: self.number + 1 },
            count: 1,
        }
    }

    /// A line, CRLF or LF ended, without its end; `None` at the end of the input.
    fn line(&mut self) -> io::Result<Option<String>> {
        let source = self.source.as_mut().expect("reading");
        let mut buf = Vec::new();
        let n = source.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.pos += n as u64;
        while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    /// The next record; `Ok(None)` at a clean end.
    fn record(&mut self) -> Result<Option<RawRecord>, RecordError> {
        let io = |this: &Self, offset: u64, e: io::Error| {
            this.corrupt(offset, format!("the input breaks off (truncated or corrupt) at byte {offset}: {e}"))
        };
        // Records are separated by blank lines.
        let (offset, version) = loop {
            let offset = self.pos;
            match self.line() {
                Ok(None) => return Ok(None),
                Ok(Some(l)) if l.is_empty() => continue,
                Ok(Some(l)) => break (offset, l),
                Err(e) => return Err(io(self, offset, e)),
            }
        };
        if !version.starts_with("WARC/") {
            let shown: String = version.chars().take(40).collect();
            return Err(self.corrupt(offset, format!("not a WARC record at byte {offset}: {shown:?}")));
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            match self.line() {
                Ok(None) => {
                    return Err(self.corrupt(offset, format!("the record at byte {offset} ends in its headers")))
                }
                Ok(Some(l)) if l.is_empty() => break,
                Ok(Some(l)) if l.starts_with([' ', '\t']) => {
                    if let Some((_, v)) = headers.last_mut() {
                        v.push(' ');
                        v.push_str(l.trim());
                    }
                }
                Ok(Some(l)) => match l.split_once(':') {
                    Some((k, v)) => headers.push((k.trim().to_owned(), v.trim().to_owned())),
                    None => {
                        return Err(self.corrupt(
                            offset,
                            format!("the record at byte {offset} has a header line without ':' ({l:?})"),
                        ))
                    }
                },
                Err(e) => return Err(io(self, offset, e)),
            }
        }
        let Some(length) = header(&headers, "Content-Length").and_then(|v| v.parse::<u64>().ok()) else {
            return Err(self.corrupt(offset, format!("the record at byte {offset} has no Content-Length")));
        };
        let mut block = Vec::with_capacity(length.min(MAX_BLOCK) as usize);
        let source = self.source.as_mut().expect("reading");
        let got = if length > MAX_BLOCK {
            // Not kept in memory: a video or an archive, not a page.
            io::copy(&mut source.take(length), &mut io::sink()).map_err(|e| io(self, offset, e))? as usize
        } else {
            source.take(length).read_to_end(&mut block).map_err(|e| io(self, offset, e))?
        };
        self.pos += got as u64;
        if (got as u64) < length {
            return Err(
                self.corrupt(offset, format!("the record at byte {offset} is cut short: {got} of its {length} bytes"))
            );
        }
        self.number += 1;
        if length > MAX_BLOCK {
            // Passed over, as other records that are not documents are.
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("WARC-Type"));
            headers.push(("WARC-Type".into(), "oversized".into()));
        }
        Ok(Some(RawRecord { offset, headers, block }))
    }

    /// The document a record makes, if it makes one.
    fn document(&self, r: RawRecord) -> Option<Record> {
        let kind = header(&r.headers, "WARC-Type").unwrap_or_default().to_ascii_lowercase();
        let id = header(&r.headers, "WARC-Record-ID").unwrap_or_default().to_owned();
        let url = header(&r.headers, "WARC-Target-URI").unwrap_or_default().to_owned();
        let date = header(&r.headers, "WARC-Date").unwrap_or_default().to_owned();
        let (text, content_type, length) = match kind.as_str() {
            "conversion" => {
                let content_type = header(&r.headers, "Content-Type").unwrap_or("text/plain").to_owned();
                let length = r.block.len();
                (String::from_utf8_lossy(&r.block).into_owned(), content_type, length)
            }
            "response" => {
                let http = HttpResponse::parse(&r.block)?;
                let declared = header(&r.headers, "WARC-Identified-Payload-Type")
                    .map(mime)
                    .or_else(|| header(&http.headers, "Content-Type").map(mime));
                if declared.as_deref().is_some_and(|m| m != "text/html" && m != "application/xhtml+xml") {
                    return None;
                }
                let body = http.payload();
                let charset = header(&http.headers, "Content-Type").and_then(charset_of);
                let text = to_utf8(&body, charset.as_deref());
                (text, declared.unwrap_or_else(|| "text/html".into()), body.len())
            }
            _ => return None,
        };
        let fields = vec![
            (self.options.names.id.clone(), json_string(&id)),
            ("url".to_owned(), json_string(&url)),
            ("warc_record_id".to_owned(), json_string(&id)),
            ("date".to_owned(), json_string(&date)),
            ("content_type".to_owned(), json_string(&content_type)),
            ("html_length".to_owned(), RawValue::from_string(length.to_string()).expect("a number")),
        ];
        let offset = r.offset;
        Some(Ok(Doc::assemble(fields, text, 1, &self.options.names, offset, || format!("warc#{offset}"))))
    }
}

impl UnitReader for WarcReader {
    fn next_batch(&mut self) -> Option<Vec<Record>> {
        if self.source.is_none() {
            return self.pending.take().map(|e| vec![Err(e)]);
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < self.options.batch_size && bytes < self.options.batch_bytes {
            match self.record() {
                Ok(Some(raw)) => {
                    bytes += raw.block.len();
                    if let Some(doc) = self.document(raw) {
                        records.push(doc);
                    }
                }
                Ok(None) => {
                    self.source = None;
                    break;
                }
                Err(e) => {
                    records.push(Err(e));
                    self.source = None;
                    break;
                }
            }
        }
        if records.is_empty() && self.source.is_none() {
            return None;
        }
        Some(records)
    }

    fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The media type of a Content-Type value: lowercased, parameters off.
fn mime(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The `charset` parameter of a Content-Type value.
fn charset_of(value: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches(['"', '\'']).to_owned())
    })
}

struct HttpResponse<'a> {
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> HttpResponse<'a> {
    /// The status line and headers of an HTTP response, and its body;
    /// `None` when the block is not one.
    fn parse(block: &'a [u8]) -> Option<HttpResponse<'a>> {
        let end = memchr::memmem::find(block, b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| memchr::memmem::find(block, b"\n\n").map(|i| (i, i + 2)))?;
        let head = String::from_utf8_lossy(&block[..end.0]);
        let mut lines = head.lines();
        if !lines.next()?.starts_with("HTTP/") {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Some(HttpResponse { headers, body: &block[end.1..] })
    }

    /// The body as the server meant it: de-chunked, then decoded by its
    /// Content-Encoding; a step that fails leaves the bytes as they were
    /// (as warcio does).
    fn payload(&self) -> Vec<u8> {
        let mut body = self.body.to_vec();
        if header(&self.headers, "Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            if let Some(joined) = dechunk(&body) {
                body = joined;
            }
        }
        let encoding = header(&self.headers, "Content-Encoding").unwrap_or_default().trim().to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "gzip" | "x-gzip" => read_all(flate2::read::MultiGzDecoder::new(&body[..])),
            // Servers send zlib-wrapped deflate, or raw deflate.
            "deflate" => read_all(flate2::read::ZlibDecoder::new(&body[..]))
                .or_else(|| read_all(flate2::read::DeflateDecoder::new(&body[..]))),
            "br" => read_all(brotli_decompressor::Decompressor::new(&body[..], 4096)),
            _ => None,
        };
        decoded.unwrap_or(body)
    }
}

fn read_all(mut r: impl Read) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).ok().map(|_| out)
}

/// A chunked body's chunks joined; `None` when it is not well formed.
fn dechunk(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    loop {
        let line_end = at + memchr::memchr(b'\n', &body[at..])?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?.trim();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 1;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(at..at + size)?);
        at += size;
        // The CRLF after the chunk.
        while body.get(at).is_some_and(|&b| b == b'\r' || b == b'\n') {
            at += 1;
        }
    }
}

/// HTML bytes as UTF-8: the declared charset, else a `<meta>` charset in
/// the first 1024 bytes, else UTF-8 if they are valid UTF-8, else the
/// encoding chardetng guesses.
pub fn to_utf8(body: &[u8], declared: Option<&str>) -> String {
    let label = declared.map(str::to_owned).or_else(|| meta_charset(body));
    let encoding = label.as_deref().and_then(|l| encoding_rs::Encoding::for_label(l.trim().as_bytes()));
    let encoding = match encoding {
        Some(e) => e,
        None if std::str::from_utf8(body).is_ok() => encoding_rs::UTF_8,
        None => {
            let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            detector.feed(body, true);
            detector.guess(None, chardetng::Utf8Detection::Allow)
        }
    };
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// `<meta charset="...">` or `<meta http-equiv="Content-Type" content="...; charset=...">`.
fn meta_charset(body: &[u8]) -> Option<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r#"<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_\-:.]+)"#).expect("a valid pattern")
    });
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    pattern.captures(&head).map(|c| c[1].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_encoded_bodies_decode() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n").unwrap(), b"hello world");
        assert_eq!(dechunk(b"zz\r\nhello"), None);
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b"<p>gzip</p>").unwrap();
            e.finish().unwrap()
        };
        let mut block = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n".to_vec();
        block.extend_from_slice(&gz);
        assert_eq!(HttpResponse::parse(&block).unwrap().payload(), b"<p>gzip</p>");
        // A body that claims gzip but is not stays as it is.
        let plain = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n<p>plain</p>";
        assert_eq!(HttpResponse::parse(plain).unwrap().payload(), b"<p>plain</p>");
    }

    #[test]
    fn charsets_come_from_the_header_the_meta_or_the_bytes() {
        let latin1 = b"<p>caf\xe9 cr\xe8me</p>";
        assert_eq!(to_utf8(latin1, Some("iso-8859-1")), "<p>café crème</p>");
        let meta = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head>\x93quoted\x94";
        assert!(to_utf8(meta, None).ends_with("\u{201c}quoted\u{201d}"));
        let sjis = encoding_rs::SHIFT_JIS.encode("<meta charset=\"shift_jis\"><p>日本語のテキストです</p>").0;
        assert!(to_utf8(&sjis, None).contains("日本語のテキストです"));
        let gbk =
            encoding_rs::GBK.encode("<p>这是一个中文网页，用来测试编码的检测。中文文本应该被正确识别出来。</p>").0;
        assert!(to_utf8(&gbk, None).contains("中文网页"), "{}", to_utf8(&gbk, None));
        assert_eq!(to_utf8("<p>ünïcödé</p>".as_bytes(), None), "<p>ünïcödé</p>");
        assert_eq!(charset_of("text/html; Charset=\"UTF-8\""), Some("UTF-8".into()));
        assert_eq!(mime(" Text/HTML; charset=x"), "text/html");
    }
}
