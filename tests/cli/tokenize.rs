//! `curate tokenizer train` and `curate tokenize`: round trips through both
//! shard formats, both token widths, shard rolling, the manifest, shuffling,
//! the validation split, and bad tokenizers.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::{Array, ListArray, StringArray, UInt16Array, UInt32Array};
use curate_shards::{megatron, Manifest, Split, TokenWidth};
use serde_json::Value;

use crate::util::*;

fn fixtures() -> PathBuf {
    root().join("fixtures/corpus")
}

/// A tokenizer trained once on the fixtures, shared by the tests.
fn trained() -> &'static Path {
    static TOKENIZER: OnceLock<PathBuf> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("tokenizer.json");
        let out = curate()
            .args(["tokenizer", "train", "--vocab-size", "700", "--input"])
            .arg(fixtures())
            .arg("--output")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        path
    })
}

fn tokenize(input: &Path, tokenizer: &Path, out: &Path, flags: &[&str]) -> std::process::Output {
    curate()
        .arg("tokenize")
        .arg("--input")
        .arg(input)
        .arg("--tokenizer")
        .arg(tokenizer)
        .arg("--output")
        .arg(out)
        .args(["--progress", "none"])
        .args(flags)
        .output()
        .unwrap()
}

fn tokenize_ok(input: &Path, tokenizer: &Path, out: &Path, flags: &[&str]) -> Value {
    let o = tokenize(input, tokenizer, out, flags);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: Value = serde_json::from_slice(&fs::read(out.join("stats.json")).unwrap()).unwrap();
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert_eq!(n("input_docs"), n("written_docs") + n("skipped_empty_docs") + n("error_docs"), "{stats:#}");
    stats
}

/// (id, tokens) of every document of a split, read from Parquet, checked
/// against the Megatron files of the same shards.
fn read_split(out: &Path, split: Split) -> Vec<(String, Vec<u32>)> {
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    let mut docs = Vec::new();
    for shard in manifest.shards(split) {
        let prefix = out.join(&shard.name);
        let mut from_parquet = Vec::new();
        for batch in read_parquet(&prefix.with_extension("parquet")) {
            let ids = batch.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
            let tokens = batch.column_by_name("tokens").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
            for i in 0..batch.num_rows() {
                let row = tokens.value(i);
                let row: Vec<u32> = match manifest.token_width {
                    TokenWidth::U16 => {
                        row.as_any().downcast_ref::<UInt16Array>().unwrap().values().iter().map(|&t| t as u32).collect()
                    }
                    TokenWidth::U32 => row.as_any().downcast_ref::<UInt32Array>().unwrap().values().to_vec(),
                };
                from_parquet.push((ids.value(i).to_owned(), row));
            }
        }
        if manifest.formats.iter().any(|f| f == "datatrove") {
            let ds = curate_shards::datatrove::read(&prefix.with_extension("ds"), manifest.token_width).unwrap();
            let tokens: Vec<Vec<u32>> = from_parquet.iter().map(|(_, t)| t.clone()).collect();
            assert_eq!(ds, tokens, "{} .ds", shard.name);
        }
        let reader = megatron::Reader::open(&prefix).unwrap();
        assert_eq!(reader.width, manifest.token_width);
        assert_eq!(reader.len(), from_parquet.len());
        for (i, (_, tokens)) in from_parquet.iter().enumerate() {
            assert_eq!(&reader.get(i).unwrap(), tokens, "{} document {i}", shard.name);
        }
        assert_eq!(shard.docs as usize, from_parquet.len());
        assert_eq!(shard.tokens, from_parquet.iter().map(|(_, t)| t.len() as u64).sum::<u64>());
        docs.extend(from_parquet);
    }
    docs
}

#[test]
fn encode_write_read_decode_round_trips_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let docs = generate_docs(300, 11);
    write_jsonl(&input, &docs);
    let out = dir.path().join("tokens");
    let stats =
        tokenize_ok(&input, trained(), &out, &["--shard-tokens", "5000", "--format", "parquet,megatron,datatrove"]);
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    assert_eq!(manifest.token_width, TokenWidth::U16);
    assert!(manifest.shards.len() > 3, "shards roll by token count");
    for shard in &manifest.shards[..manifest.shards.len() - 1] {
        assert!(shard.tokens >= 5000 && shard.tokens < 5000 + 1000, "{shard:?}");
    }
    assert_eq!(manifest.tokens(Split::Train), stats["tokens"].as_u64().unwrap());
    let tokenizer = tokenizers::Tokenizer::from_file(trained()).unwrap();
    let eos = tokenizer.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(manifest.tokenizer.eos_id, Some(eos));
    let written = read_split(&out, Split::Train);
    assert_eq!(written.len(), 300);
    for ((id, tokens), doc) in written.iter().zip(&docs) {
        assert_eq!(id, doc["id"].as_str().unwrap(), "input order is kept");
        assert_eq!(*tokens.last().unwrap(), eos);
        assert_eq!(tokenizer.decode(&tokens[..tokens.len() - 1], false).unwrap(), doc["text"].as_str().unwrap());
    }
}

#[test]
fn a_large_vocabulary_writes_32_bit_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // A word-level tokenizer with 70,000 words: ids past uint16.
    let vocab: serde_json::Map<String, Value> = (0..70_000).map(|i| (format!("w{i}"), Value::from(i))).collect();
    let mut vocab = vocab;
    vocab.insert("<unk>".into(), Value::from(70_000));
    vocab.insert("<|endoftext|>".into(), Value::from(70_001));
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let path = dir.path().join("wide.json");
    fs::write(&path, tokenizer.to_string()).unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(&input, "{\"id\": \"a\", \"text\": \"w69999 w5 nope\"}\n").unwrap();
    let out = dir.path().join("tokens");
    tokenize_ok(&input, &path, &out, &[]);
    assert_eq!(Manifest::load(&out.join("manifest.json")).unwrap().token_width, TokenWidth::U32);
    assert_eq!(read_split(&out, Split::Train), [("a".to_owned(), vec![69_999, 5, 70_000, 70_001])]);
}

#[test]
fn documents_that_tokenize_to_nothing_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(&input, "{\"id\": \"e\", \"text\": \"\"}\n{\"id\": \"f\", \"text\": \"full\"}\n{\"id\": \"bad\"}\n")
        .unwrap();
    let with_eos = tokenize_ok(&input, trained(), &dir.path().join("a"), &[]);
    assert_eq!((with_eos["written_docs"].as_u64(), with_eos["empty_text_docs"].as_u64()), (Some(2), Some(1)));
    assert_eq!(with_eos["errors"]["missing_text"]["count"], 1);
    let docs = read_split(&dir.path().join("a"), Split::Train);
    assert_eq!(docs[0], ("e".to_owned(), vec![0]), "an empty text is its end-of-text token");
    let without = tokenize_ok(&input, trained(), &dir.path().join("b"), &["--no-eos"]);
    assert_eq!((without["written_docs"].as_u64(), without["skipped_empty_docs"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn shuffle_is_deterministic_and_the_validation_split_is_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &generate_docs(400, 2));
    let flags = ["--shuffle-seed", "42", "--validation-fraction", "0.2", "--shard-tokens", "20000"];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tokenize_ok(&input, trained(), &a, &[&flags[..], &["--threads", "1"]].concat());
    tokenize_ok(&input, trained(), &b, &[&flags[..], &["--threads", "2"]].concat());
    assert_eq!(snapshot(&a), snapshot(&b), "same seed, same bytes, whatever the threads");

    let train = read_split(&a, Split::Train);
    let validation = read_split(&a, Split::Validation);
    assert!((40..=120).contains(&validation.len()), "about a fifth held out: {}", validation.len());
    let ids = |docs: &[(String, Vec<u32>)]| docs.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>();
    assert!(ids(&train).is_disjoint(&ids(&validation)));
    assert_eq!(ids(&train).len() + ids(&validation).len(), 400);
    let in_order: Vec<String> = (0..400).map(|i| format!("doc-{i}")).filter(|id| ids(&train).contains(id)).collect();
    let shuffled: Vec<String> = train.iter().map(|(id, _)| id.clone()).collect();
    assert_ne!(shuffled, in_order, "documents are shuffled");

    let c = dir.path().join("c");
    tokenize_ok(
        &input,
        trained(),
        &c,
        &["--shuffle-seed", "43", "--validation-fraction", "0.2", "--shard-tokens", "20000"],
    );
    assert_ne!(read_split(&c, Split::Train).iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), shuffled);

    let again = tokenize(&input, trained(), &a, &[&flags[..], &["--threads", "1"]].concat());
    assert!(stderr(&again).contains("already complete"));
    let other = tokenize(&input, trained(), &a, &["--shuffle-seed", "1"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(stderr(&other).contains("holds token shards of another tokenizer, input or options"));
}

#[test]
fn a_tokenizer_that_does_not_load_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(&input, "{\"text\": \"x\"}\n").unwrap();
    let bad = dir.path().join("tokenizer.json");
    fs::write(&bad, "{\"model\": 3}").unwrap();
    let out = tokenize(&input, &bad, &dir.path().join("o"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{} is not a usable tokenizer.json", bad.display())), "{}", stderr(&out));
    let missing = tokenize(&input, &dir.path().join("nope.json"), &dir.path().join("o"), &[]);
    assert!(stderr(&missing).contains("cannot read tokenizer"), "{}", stderr(&missing));
    let no_eos = tokenize(&input, trained(), &dir.path().join("o"), &["--eos-token", "</s>"]);
    assert!(stderr(&no_eos).contains("end-of-text token \"</s>\" is not in the vocabulary"), "{}", stderr(&no_eos));
}

#[test]
fn a_trained_tokenizer_has_the_requested_vocabulary_and_special_tokens() {
    let tokenizer = tokenizers::Tokenizer::from_file(trained()).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 700);
    for (i, t) in ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"].iter().enumerate() {
        assert_eq!(tokenizer.token_to_id(t), Some(i as u32));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = curate()
        .args(["tokenizer", "train", "--vocab-size", "100", "--input"])
        .arg(fixtures())
        .arg("--output")
        .arg(dir.path().join("t.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("vocab_size 100 is smaller than the 256 byte tokens plus 5 special tokens"));
}
