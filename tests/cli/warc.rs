//! WARC and WET files as input (fixtures/warc/, made from real pages by
//! scripts/make_warc_fixture.py with warcio): which records become
//! documents, their fields, bodies decoded (chunked, gzip, Brotli) and
//! converted from their charsets (declared, in a meta tag, or detected),
//! the same documents from zstd, and a cut file's error with its record
//! and offset, the documents before it kept.

use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn run_warc(dir: &Path, input: &Path) -> (Vec<Value>, Value, std::process::Output) {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let p = pipeline(
        dir,
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"length\"\nmin_chars = 0\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n[run]\non_error = \"skip\"\n",
            input.display(),
            out.display()
        ),
    );
    let result = run(&p, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    (jsonl_docs(&out), stats(&out), result)
}

#[test]
fn warc_and_wet_records_become_documents_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, stats, _) = run_warc(dir.path(), &root().join("fixtures/warc"));
    assert_eq!(stats["input_docs"], 11, "{stats:#}");
    let by_url = |url: &str| docs.iter().find(|d| d["url"] == url).unwrap_or_else(|| panic!("no {url}"));
    // Real pages: UTF-8 text whose length is the decoded payload's, however it was served.
    let pages: Vec<&Value> = docs
        .iter()
        .filter(|d| d["content_type"] == "text/html" && d["html_length"].as_u64().unwrap() > 40_000)
        .collect();
    assert_eq!(pages.len(), 4);
    for page in &pages {
        assert_eq!(
            page["text"].as_str().unwrap().len() as u64,
            page["html_length"].as_u64().unwrap(),
            "{}",
            page["url"]
        );
        assert!(page["text"].as_str().unwrap().starts_with("<html"), "{}", page["url"]);
        assert!(page["id"].as_str().unwrap().starts_with("<urn:uuid:") && page["id"] == page["warc_record_id"]);
        assert!(page["date"].as_str().unwrap().starts_with("20"));
    }
    assert!(by_url("http://example.fr/latin1")["text"].as_str().unwrap().contains("Café crème à la française"));
    assert!(by_url("http://example.com/cp1252")["text"]
        .as_str()
        .unwrap()
        .contains("\u{201c}Smart quotes\u{201d} \u{2013} and a euro: \u{20ac}"));
    assert!(by_url("http://example.jp/sjis")["text"].as_str().unwrap().contains("これは日本語のウェブページです"));
    assert!(by_url("http://example.cn/gbk")["text"].as_str().unwrap().contains("这是一个中文网页"));
    assert_eq!(by_url("http://example.org/untyped")["text"], "<p>no content type at all</p>");
    assert!(docs.iter().all(|d| d["url"] != "http://example.org/logo.png"), "an image is not a document");
    let wet: Vec<&Value> = docs.iter().filter(|d| d["content_type"] == "text/plain").collect();
    assert_eq!(wet.len(), 2);
    assert!(wet.iter().all(|d| !d["text"].as_str().unwrap().contains('<')));
}

#[test]
fn zstd_gives_the_same_documents_and_a_cut_file_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("fixtures/warc/pages.warc.gz");
    let raw = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&fixture).unwrap()).read_to_end(&mut out).unwrap();
        out
    };
    let zst = dir.path().join("in/pages.warc.zst");
    std::fs::create_dir_all(zst.parent().unwrap()).unwrap();
    std::fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    let (from_zst, _, _) = run_warc(dir.path(), &zst);
    let from_gz = {
        let d = tempfile::tempdir().unwrap();
        run_warc(d.path(), &fixture).0
    };
    assert_eq!(from_zst, from_gz);
    assert_eq!(from_gz.len(), 9);

    // Cut through the third page's record: two pages and the records before survive.
    let third = memchr::memmem::find_iter(&raw, b"WARC/1.").nth(8).unwrap();
    let cut = dir.path().join("cut/pages.warc");
    std::fs::create_dir_all(cut.parent().unwrap()).unwrap();
    std::fs::write(&cut, &raw[..third + 3000]).unwrap();
    let (docs, stats, result) = run_warc(dir.path(), &cut);
    assert_eq!(docs.len(), 2, "{stats:#}");
    assert_eq!(stats["error_docs"], 1);
    let example = stats["errors"]["corrupt_input"]["examples"].to_string();
    assert!(example.contains("record 9 (byte") && example.contains("is cut short"), "{example}");
    assert!(stderr(&result).contains("corrupt_input"), "{}", stderr(&result));

    // Bytes that are not WARC at all.
    let junk = dir.path().join("junk/notes.warc");
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, "hello, this is not an archive\n").unwrap();
    let (docs, stats, _) = run_warc(dir.path(), &junk);
    assert!(docs.is_empty());
    assert!(stats["errors"]["corrupt_input"]["examples"].to_string().contains("not a WARC record at byte 0"));
}

#[test]
fn the_warc_pipeline_goes_from_a_crawl_to_token_shards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let result = curate()
        .current_dir(root())
        .args(["run", "fixtures/warc-pipeline.toml", "--progress", "none", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let stats = stats(&out);
    assert_eq!((stats["input_docs"].as_u64(), stats["kept_docs"].as_u64()), (Some(9), Some(4)), "{stats:#}");
    assert_eq!(stats["steps"][0]["reasons"]["domain"], 1, "example.com is block-listed: {stats:#}");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(root().join("fixtures/html/ground-truth.json")).unwrap()).unwrap();
    let docs = jsonl_docs(&out);
    for page in truth.as_object().unwrap().values() {
        let doc = docs.iter().find(|d| d["url"] == page["url"]).unwrap_or_else(|| panic!("{}", page["url"]));
        let text = doc["text"].as_str().unwrap();
        let first = page["articleBody"].as_str().unwrap().lines().next().unwrap();
        assert!(text.contains(first), "the article's first paragraph, not the page's HTML: {text}");
        assert!(!text.contains("<div") && doc["title"].is_string() && doc["html_lang"].is_string(), "{doc}");
    }
    let manifest = curate_shards::Manifest::load(&out.join("tokens/manifest.json")).unwrap();
    assert_eq!(manifest.docs(curate_shards::Split::Train), 4);
}

#[test]
fn mutated_archives_are_read_without_a_crash_and_every_record_accounted() {
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(root().join("fixtures/warc/pages.warc.gz")).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n.max(1)
    };
    for seed in 0..40 {
        let mut bytes = raw.clone();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len());
            match next(5) {
                0 => bytes.truncate(at),
                1 => bytes[at] ^= 1 << next(8),
                2 => {
                    bytes.splice(at..at, b"WARC/1.0\r\nContent-Length: 99999999\r\n\r\n".iter().copied()).for_each(drop)
                }
                3 => {
                    // A Content-Length off by a few bytes.
                    if let Some(p) = memchr::memmem::find(&bytes[at..], b"Content-Length: ") {
                        let digit = at + p + 16;
                        bytes[digit] = b'1' + (next(8) as u8);
                    }
                }
                _ => bytes.splice(at..at, (0..next(300)).map(|i| (i * 37) as u8)).for_each(drop),
            }
        }
        let input = dir.path().join(format!("m{seed}/pages.warc"));
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, &bytes).unwrap();
        let (docs, stats, _) = run_warc(dir.path(), &input);
        // stats() checked input = kept + dropped + errors; a damaged file is at most one error.
        assert!(stats["error_docs"].as_u64().unwrap() <= 1, "seed {seed}: {stats:#}");
        assert!(docs.len() <= 9, "seed {seed}");
    }
}
