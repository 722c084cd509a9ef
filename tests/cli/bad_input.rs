//! Bad input never panics and never loses a document: it is counted with
//! its location, or (with `on_error = "fail"`) stops the run naming it.

use std::fs;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use serde_json::Value;

use curate::runtime::hooks;

use crate::util::*;

fn skip_pipeline(dir: &std::path::Path, input: &str, on_error: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        &format!(
            "[input]\npath = \"{input}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n[run]\non_error = \"{on_error}\"\n",
            dir.join("out").display()
        ),
    )
}

const MIXED: &[u8] = b"{\"id\": \"a\", \"text\": \"good one\"}\n\
{\"id\": \"b\", \"text\": \"broken\n\
{\"id\": \"c\", \"text\": \"bad \xff utf8\"}\n\
{\"id\": \"d\"}\n\
{\"id\": \"e\", \"text\": 42}\n\
{\"id\": \"f\", \"text\": null}\n\
\n\
[\"not\", \"an\", \"object\"]\n\
{\"id\": \"g\", \"text\": \"good two\"}\n";

#[test]
fn malformed_records_are_counted_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    fs::write(&input, MIXED).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let out = dir.path().join("out");
    let stats = stats(&out);
    assert_eq!(stats["input_docs"], 8);
    assert_eq!(stats["kept_docs"], 2);
    assert_eq!(stats["error_docs"], 6);
    let errors = &stats["errors"];
    assert_eq!(errors["invalid_json"]["count"], 2);
    assert_eq!(errors["invalid_utf8"]["count"], 1);
    assert_eq!(errors["missing_text"]["count"], 2);
    assert_eq!(errors["text_not_string"]["count"], 1);
    let first = |kind: &str| errors[kind]["examples"][0].as_str().unwrap().to_owned();
    assert!(
        first("invalid_json").starts_with(&format!("{}:2: invalid JSON", input.display())),
        "{}",
        first("invalid_json")
    );
    assert!(first("invalid_utf8").starts_with(&format!("{}:3: ", input.display())));
    assert!(first("missing_text").starts_with(&format!("{}:4: ", input.display())));
    assert!(first("text_not_string").contains(":5: field \"text\" is a number, not a string"));
    assert!(errors["invalid_json"]["examples"][1].as_str().unwrap().starts_with(&format!("{}:8: ", input.display())));
    let ids: Vec<Value> = jsonl_docs(&out).iter().map(|d| d["id"].clone()).collect();
    assert_eq!(ids, ["a", "g"]);
}

#[test]
fn on_error_fail_stops_and_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    fs::write(&input, MIXED).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "fail");
    let out = run(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:2: invalid_json: invalid JSON", input.display())), "{err}");
    assert!(!dir.path().join("out/stats.json").exists());
    assert!(!dir.path().join("out/part-000000-000.jsonl.zst").exists(), "a failed unit leaves no shard");
}

fn lines(n: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for (i, d) in generate_docs(n, 7).iter().enumerate() {
        assert_eq!(d["n"], i);
        writeln!(text, "{d}").unwrap();
    }
    text
}

#[test]
fn truncated_gzip_and_zstd_keep_what_came_before_and_count_the_break() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    let text = lines(2000);
    let zst = zstd::encode_all(&text[..], 3).unwrap();
    fs::write(input.join("a.jsonl.zst"), &zst[..zst.len() / 2]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    fs::write(input.join("b.jsonl.gz"), &gz[..gz.len() / 2]).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let stats = stats(&dir.path().join("out"));
    assert_eq!(stats["errors"]["corrupt_input"]["count"], 2, "{stats:#}");
    let kept = stats["kept_docs"].as_u64().unwrap();
    assert!(kept > 500 && kept < 4000, "the first halves are kept: {kept}");
    let examples = stats["errors"]["corrupt_input"]["examples"].to_string();
    assert!(examples.contains("a.jsonl.zst:") && examples.contains("b.jsonl.gz:"), "{examples}");
    assert!(examples.contains("truncated or corrupt"), "{examples}");
}

#[test]
fn empty_and_unreadable_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("empty.jsonl"), b"").unwrap();
    fs::write(input.join("empty.jsonl.zst"), b"").unwrap();
    fs::write(input.join("good.jsonl"), b"{\"text\": \"hello\"}\n").unwrap();
    // A dangling link: a file that is listed but cannot be opened (tests run
    // as root here, so permissions would not stop a read).
    std::os::unix::fs::symlink(dir.path().join("gone.jsonl"), input.join("lost.jsonl")).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let stats = stats(&dir.path().join("out"));
    assert_eq!(stats["kept_docs"], 1);
    assert_eq!(stats["errors"]["unreadable_file"]["count"], 1);
    assert!(stats["errors"]["unreadable_file"]["examples"][0].as_str().unwrap().contains("lost.jsonl: cannot open"));
    assert_eq!(stats["warnings"]["empty_file"]["count"], 2, "{stats:#}");
}

/// A folder under the input that cannot be listed is counted as one
/// unreadable input under its name, as an unreadable file is, and the run
/// goes on. The tests run as root here, who reads any folder: the run
/// drops the capabilities that let it (the folder is mode 000). See:
/// issue 13, defect 12.
#[test]
fn r13_an_unreadable_subfolder_is_counted_like_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(input.join("locked")).unwrap();
    fs::write(input.join("good.jsonl"), b"{\"text\": \"hello\"}\n{\"text\": \"again\"}\n").unwrap();
    fs::write(input.join("locked/hidden.jsonl"), b"{\"text\": \"unseen\"}\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(input.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    let is_root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let out = if is_root {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]);
        cmd.arg(env!("CARGO_BIN_EXE_curate")).arg("run").arg(&p).args(["--progress", "none"]);
        cmd.output().expect("setpriv (util-linux) runs curate without the capabilities to read any folder")
    } else {
        run(&p, &[])
    };
    fs::set_permissions(input.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stats = stats(&dir.path().join("out"));
    assert_eq!(stats["kept_docs"], 2, "{stats:#}");
    assert_eq!(stats["errors"]["unreadable_file"]["count"], 1, "{stats:#}");
    let example = stats["errors"]["unreadable_file"]["examples"][0].as_str().unwrap();
    assert!(example.contains("in/locked: cannot list the folder: Permission denied"), "{example}");
    assert_invariant(&stats);
}

#[test]
fn a_200_mb_document_passes_through() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    let body = "all work and no play makes jack a dull boy. ".repeat(200 * 1024 * 1024 / 44 + 1);
    let mut f = fs::File::create(&input).unwrap();
    writeln!(f, "{}", serde_json::json!({"id": "big", "text": body})).unwrap();
    writeln!(f, "{}", serde_json::json!({"id": "small", "text": "tiny"})).unwrap();
    drop(f);
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "fail");
    run_ok(&p, &[]);
    let docs = jsonl_docs(&dir.path().join("out"));
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["text"].as_str().unwrap().len(), body.len());
    assert_eq!(docs[1]["id"], "small");
}

fn write_parquet(path: &std::path::Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn bad_parquet_rows_and_files_are_counted_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    write_parquet(
        &input.join("a.parquet"),
        vec![
            ("id", Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])) as ArrayRef),
            ("text", Arc::new(StringArray::from(vec![Some("one"), Some("two"), None])) as ArrayRef),
        ],
    );
    write_parquet(&input.join("b.parquet"), vec![("text", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]);
    fs::write(input.join("c.parquet"), b"PAR1 this is not parquet").unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let out = dir.path().join("out");
    let stats = stats(&out);
    assert_eq!(stats["input_docs"], 6, "{stats:#}");
    assert_eq!(stats["kept_docs"], 2);
    assert_eq!(stats["errors"]["missing_text"]["count"], 1);
    assert!(stats["errors"]["missing_text"]["examples"][0].as_str().unwrap().contains("a.parquet: row 2: "));
    assert_eq!(stats["errors"]["text_not_string"]["count"], 2);
    assert_eq!(stats["errors"]["corrupt_input"]["count"], 1);
    let docs = jsonl_docs(&out);
    assert_eq!(docs[0]["id"], "x");
    assert_eq!(docs[1]["id"], "a.parquet#1", "a null id gets one from file and row");
}

#[test]
fn a_step_that_fails_on_a_document_costs_that_document_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(&input, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"BOOM here\"}\n{\"id\": \"c\", \"text\": \"fine too\"}\n").unwrap();
    let out = dir.path().join("out");
    let body = |on_error: &str| {
        format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"length\"\nmax_chars = 100\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n[run]\non_error = \"{on_error}\"\n",
            input.display(),
            out.display()
        )
    };
    let p = pipeline(dir.path(), &body("skip"));
    let o = curate().arg("run").arg(&p).args(["--progress", "none"]).env(hooks::PANIC_ON, "BOOM").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stats = stats(&out);
    assert_eq!((stats["kept_docs"].as_u64(), stats["error_docs"].as_u64()), (Some(2), Some(1)));
    let example = stats["errors"]["step_failed"]["examples"][0].as_str().unwrap();
    assert!(example.contains("document \"b\": step length: the step failed on this document: test panic"), "{example}");

    fs::remove_dir_all(&out).unwrap();
    let p = pipeline(dir.path(), &body("fail"));
    let o = curate().arg("run").arg(&p).args(["--progress", "none"]).env(hooks::PANIC_ON, "BOOM").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("step_failed"), "{}", stderr(&o));
}

/// A link back up an input folder is read once, and said so, in every
/// command that reads folders: three documents stay three. See: issue 13,
/// defect 3.
#[test]
fn r13_a_link_loop_in_the_input_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    write_jsonl(&input.join("a.jsonl"), &generate_docs(3, 1));
    std::os::unix::fs::symlink("..", input.join("sub/up")).unwrap();
    let said = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", stderr(out));
        assert!(stderr(out).contains("sub/up: the same as"), "{}", stderr(out));
    };
    let out_dir = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n", input.display(), out_dir.display()),
    );
    said(&run(&p, &[]));
    assert_eq!(stats(&out_dir)["input_docs"], 3);

    let tokens = dir.path().join("tokens");
    let out = curate()
        .args(["tokenize", "--progress", "none", "--input"])
        .arg(&input)
        .arg("--tokenizer")
        .arg(root().join("fixtures/tokenizer.json"))
        .arg("--output")
        .arg(&tokens)
        .output()
        .unwrap();
    said(&out);
    let token_stats: Value = serde_json::from_slice(&fs::read(tokens.join("stats.json")).unwrap()).unwrap();
    assert_eq!(token_stats["input_docs"], 3);

    let work = dir.path().join("work");
    let out = curate()
        .args(["dedup", "signatures", "--progress", "none", "--input"])
        .arg(&input)
        .arg("--work")
        .arg(&work)
        .output()
        .unwrap();
    said(&out);
    assert!(stderr(&out).contains("of 3 documents"), "{}", stderr(&out));
}

/// An annotating step named like a field the documents have would write a
/// second field of that name: refused before any work when the sampled
/// input shows the field, counted as an error for a document that turns
/// out to have it later. See: issue 13, defect 4.
#[test]
fn r13_an_annotating_step_does_not_overwrite_a_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let text = "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.";
    let body = |out: &str, format: &str| {
        format!(
            "[input]\npath = \"{}\"\nbatch_size = 1\n[[step]]\ntype = \"gopher_quality\"\nname = \"quality\"\nmode = \"annotate\"\n\
             [output]\npath = \"{}\"\nformat = \"{format}\"\n",
            input.display(),
            dir.path().join(out).display()
        )
    };
    // The first batch (one document) has the field: refused, nothing written.
    let docs =
        [serde_json::json!({"id": "a", "text": text, "quality": "gold"}), serde_json::json!({"id": "b", "text": text})];
    write_jsonl(&input, &docs);
    let out = run(&pipeline(dir.path(), &body("refused", "jsonl")), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("step quality: its field \"quality\" is a field of the input"), "{}", stderr(&out));
    assert!(!dir.path().join("refused").exists());

    // Only a later document has it: that document is a counted error, the
    // others are annotated; in both output formats.
    write_jsonl(&input, &[docs[1].clone(), docs[0].clone(), docs[1].clone()]);
    for format in ["jsonl", "parquet"] {
        let out_dir = dir.path().join(format!("out-{format}"));
        run_ok(&pipeline(dir.path(), &body(&format!("out-{format}"), format)), &[]);
        let s = stats(&out_dir);
        assert_eq!((s["kept_docs"].as_u64(), s["error_docs"].as_u64()), (Some(2), Some(1)), "{format}: {s:#}");
        assert_eq!(s["errors"]["field_collision"]["count"], 1);
        assert!(s["errors"]["field_collision"]["examples"][0]
            .as_str()
            .unwrap()
            .contains("document \"a\": step quality"));
    }
    let kept = jsonl_docs(&dir.path().join("out-jsonl"));
    assert!(kept.iter().all(|d| d["quality"] == "gopher_short_doc"), "{kept:?}");
}

/// A UTF-8 byte order mark before the first line is not part of the first
/// record (plain and compressed). See: issue 13, defect 12.
#[test]
fn r13_a_byte_order_mark_does_not_spoil_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let body = "\u{feff}{\"id\": \"a\", \"text\": \"first\"}\n{\"id\": \"b\", \"text\": \"second\"}\n";
    std::fs::write(input.join("plain.jsonl"), body).unwrap();
    std::fs::write(input.join("packed.jsonl.zst"), zstd::encode_all(body.as_bytes(), 3).unwrap()).unwrap();
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let s = stats(&dir.path().join("out"));
    assert_eq!((s["kept_docs"].as_u64(), s["error_docs"].as_u64()), (Some(4), Some(0)), "{s:#}");
}

/// A dictionary-encoded text column is text. See: issue 13, defect 12.
#[test]
fn r13_a_dictionary_encoded_text_column_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dict.parquet");
    let text: arrow_array::DictionaryArray<arrow_array::types::Int32Type> =
        vec!["the same text", "another text", "the same text"].into_iter().collect();
    write_parquet(&input, vec![("id", Arc::new(StringArray::from(vec!["a", "b", "c"]))), ("text", Arc::new(text))]);
    let p = skip_pipeline(dir.path(), input.to_str().unwrap(), "skip");
    run_ok(&p, &[]);
    let texts: Vec<Value> = jsonl_docs(&dir.path().join("out")).iter().map(|d| d["text"].clone()).collect();
    assert_eq!(texts, ["the same text", "another text", "the same text"]);
}
