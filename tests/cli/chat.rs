//! `curate tokenize --chat`: conversations rendered with real template
//! styles (ChatML, LLaMA 3, Mistral, Zephyr) give transformers' tokens and
//! assistant masks, the mask reaches both shard formats, and records the
//! template refuses or that train nothing are counted, not lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::{Array, ListArray, StringArray, UInt16Array, UInt8Array};
use curate_shards::{loss_mask, megatron, Manifest, Split};
use serde_json::Value;

use crate::util::*;

fn chat_fixtures() -> PathBuf {
    root().join("fixtures/chat")
}

fn tokenize_chat(input: &Path, out: &Path, flags: &[&str]) -> Value {
    let result = curate()
        .arg("tokenize")
        .arg("--input")
        .arg(input)
        .arg("--tokenizer")
        .arg(chat_fixtures().join("tokenizer.json"))
        .arg("--output")
        .arg(out)
        .args(["--progress", "none", "--chat"])
        .args(flags)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let stats: Value = serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert_eq!(
        n("input_docs"),
        n("written_docs") + n("skipped_empty_docs") + n("skipped_untrained_docs") + n("error_docs"),
        "{stats:#}"
    );
    stats
}

/// id → (tokens, mask) from the Parquet shards of a split, checked against the
/// Megatron files and their `.mask.bin`.
fn read_chat_shards(out: &Path, split: Split) -> BTreeMap<String, (Vec<u32>, Vec<u8>)> {
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    assert!(manifest.loss_mask);
    let mut docs = BTreeMap::new();
    for shard in manifest.shards(split) {
        let prefix = out.join(&shard.name);
        let mut rows = Vec::new();
        for batch in read_parquet(&prefix.with_extension("parquet")) {
            let ids = batch.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
            let tokens = batch.column_by_name("tokens").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
            let masks = batch.column_by_name("loss_mask").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
            for i in 0..batch.num_rows() {
                let t = tokens.value(i);
                let t: Vec<u32> =
                    t.as_any().downcast_ref::<UInt16Array>().unwrap().values().iter().map(|&x| x as u32).collect();
                let m = masks.value(i);
                let m = m.as_any().downcast_ref::<UInt8Array>().unwrap().values().to_vec();
                assert_eq!(t.len(), m.len());
                rows.push((ids.value(i).to_owned(), t, m));
            }
        }
        let reader = megatron::Reader::open(&prefix).unwrap();
        let total: u64 = rows.iter().map(|r| r.1.len() as u64).sum();
        let sidecar = loss_mask::read(&loss_mask::path_beside(&prefix.with_extension("bin")), total).unwrap();
        let mut at = 0;
        for (i, (id, tokens, mask)) in rows.into_iter().enumerate() {
            assert_eq!(reader.get(i).unwrap(), tokens, "{id}: Megatron tokens");
            assert_eq!(&sidecar[at..at + mask.len()], mask.as_slice(), "{id}: .mask.bin");
            at += mask.len();
            docs.insert(id, (tokens, mask));
        }
    }
    docs
}

#[test]
fn chat_templates_give_transformers_tokens_and_assistant_masks() {
    let work = tempfile::tempdir().unwrap();
    let conversations = chat_fixtures().join("conversations.jsonl");
    for style in ["chatml", "llama3", "mistral", "zephyr"] {
        let template = chat_fixtures().join(format!("{style}.jinja"));
        let out = work.path().join(style);
        let stats = tokenize_chat(&conversations, &out, &["--chat-template", template.to_str().unwrap()]);
        let ours = read_chat_shards(&out, Split::Train);
        let reference = python_reference(
            "chat_template.py",
            &[chat_fixtures().as_os_str(), template.as_os_str(), conversations.as_os_str()],
        );
        let (mut refused, mut untrained, mut compared) = (0, 0, 0);
        for line in reference.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            let id = r["id"].as_str().unwrap();
            if r.get("error").is_some() {
                assert!(!ours.contains_key(id), "{style} {id}: transformers refuses it, curate wrote it");
                refused += 1;
                continue;
            }
            let ids: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let mask: Vec<u8> = r["mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
            if !mask.contains(&1) {
                assert!(!ours.contains_key(id), "{style} {id}: nothing to train on, yet written");
                untrained += 1;
                continue;
            }
            let (tokens, our_mask) = ours.get(id).unwrap_or_else(|| panic!("{style} {id}: missing"));
            assert_eq!(tokens, &ids, "{style} {id}: tokens differ from apply_chat_template's");
            assert_eq!(our_mask, &mask, "{style} {id}: mask differs from return_assistant_tokens_mask's");
            compared += 1;
        }
        assert_eq!(stats["error_docs"].as_u64().unwrap(), refused, "{style}: {stats:#}");
        assert_eq!(stats["skipped_untrained_docs"].as_u64().unwrap(), untrained, "{style}");
        assert!(compared >= 8, "{style}: only {compared} conversations compared");
        assert!(refused + untrained >= 1, "{style}: the fixture has a conversation with nothing to train on");
        if style == "llama3" {
            // The trainer's tests read fixtures/chat/tokens: it must be what this makes.
            let fresh = work.path().join("fixture");
            let flags = ["--chat-template", template.to_str().unwrap(), "--validation-fraction", "0.25"];
            tokenize_chat(&conversations, &fresh, &flags);
            for split in [Split::Train, Split::Validation] {
                assert_eq!(
                    read_chat_shards(&chat_fixtures().join("tokens"), split),
                    read_chat_shards(&fresh, split),
                    "fixtures/chat/tokens is stale"
                );
            }
        }
    }
}

#[test]
fn train_on_chooses_the_masked_tokens_and_prompt_completion_records_work() {
    let work = tempfile::tempdir().unwrap();
    let conversations = chat_fixtures().join("conversations.jsonl");
    // The tokenizer's own template (ChatML, from its tokenizer_config.json).
    let tokenized = |name: &str, flags: &[&str]| {
        let out = work.path().join(name);
        tokenize_chat(&conversations, &out, flags);
        read_chat_shards(&out, Split::Train)
    };
    let assistant = tokenized("assistant", &[]);
    let last = tokenized("completion", &["--train-on", "completion"]);
    let all = tokenized("all", &["--train-on", "all"]);
    let (tokens, mask) = &assistant["system-multi-turn"];
    let ones = |m: &[u8]| m.iter().filter(|&&b| b == 1).count();
    // Two answers, each a run of ones; the last-turn mask keeps the second.
    let runs = mask.windows(2).filter(|w| w == &[0, 1]).count();
    assert_eq!(runs, 2, "{mask:?}");
    let (last_tokens, last_mask) = &last["system-multi-turn"];
    assert_eq!(last_tokens, tokens);
    let second = mask.windows(2).rposition(|w| w == [0, 1]).unwrap() + 1;
    assert!(ones(last_mask) > 0 && last_mask[..second].iter().all(|&b| b == 0), "{last_mask:?}");
    assert_eq!(&last_mask[second..], &mask[second..]);
    assert!(all["system-multi-turn"].1.iter().all(|&b| b == 1));
    // A conversation without an assistant turn is written when every token counts.
    assert!(all.contains_key("ends-with-user") && !assistant.contains_key("ends-with-user"));

    let out = work.path().join("pc");
    let stats = tokenize_chat(&chat_fixtures().join("prompt_completion.jsonl"), &out, &[]);
    assert_eq!(stats["written_docs"], 2, "{stats:#}");
    let pc = read_chat_shards(&out, Split::Train);
    let tok = tokenizers::Tokenizer::from_file(chat_fixtures().join("tokenizer.json")).unwrap();
    let (tokens, mask) = &pc["pc-text"];
    let prompt = tok.encode("The capital of France is", false).unwrap().get_ids().to_vec();
    let whole = tok.encode("The capital of France is Paris.", false).unwrap().get_ids().to_vec();
    let eot = tok.token_to_id("<|eot_id|>").unwrap();
    assert_eq!(tokens[..tokens.len() - 1], whole[..], "text, then the template's end token");
    assert_eq!(*tokens.last().unwrap(), eot);
    assert!(mask[..prompt.len()].iter().all(|&b| b == 0) && mask[prompt.len()..].iter().all(|&b| b == 1), "{mask:?}");
    let (tokens, mask) = &pc["pc-messages"];
    let text =
        tok.decode(&tokens.iter().zip(mask).filter(|(_, &m)| m == 1).map(|(&t, _)| t).collect::<Vec<_>>(), false);
    assert_eq!(text.unwrap(), "Queequeg.<|im_end|>\n");
}

#[test]
fn broken_chat_records_are_counted_with_their_reason() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("bad.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"id\": \"ok\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n",
            "{\"id\": \"object\", \"messages\": {\"role\": \"user\"}}\n",
            "{\"id\": \"no-role\", \"messages\": [{\"content\": \"Hi\"}]}\n",
            "{\"id\": \"neither\", \"text\": \"plain\"}\n",
            "{\"id\": \"mixed\", \"prompt\": \"a\", \"completion\": [{\"role\": \"assistant\", \"content\": \"b\"}]}\n",
            "not json\n",
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let stats = tokenize_chat(&input, &out, &[]);
    assert_eq!(stats["written_docs"], 1, "{stats:#}");
    assert_eq!(stats["errors"]["chat_record"]["count"], 4, "{stats:#}");
    assert_eq!(stats["errors"]["invalid_json"]["count"], 1, "{stats:#}");
    let examples = stats["errors"]["chat_record"]["examples"].to_string();
    assert!(
        examples.contains("is not a list of messages") && examples.contains("no string \\\"role\\\""),
        "{examples}"
    );

    // A template that does not compile is refused before any work, by file.
    let bad = work.path().join("bad.jinja");
    std::fs::write(&bad, "{% for m in messages %}{{ m.content }").unwrap();
    let result = curate()
        .args(["tokenize", "--progress", "none", "--chat", "--input"])
        .arg(&input)
        .arg("--tokenizer")
        .arg(chat_fixtures().join("tokenizer.json"))
        .arg("--output")
        .arg(work.path().join("never"))
        .arg("--chat-template")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("bad.jinja: the chat template does not compile"), "{}", stderr(&result));
}

#[test]
fn parquet_conversations_give_the_tokens_json_lines_give() {
    // The fixture's conversations as a Parquet file: messages become a list
    // of structs (with nulls where a message lacks a key), as pandas or
    // datasets write them.
    let work = tempfile::tempdir().unwrap();
    let jsonl = chat_fixtures().join("conversations.jsonl");
    let mut reader = std::io::BufReader::new(std::fs::File::open(&jsonl).unwrap());
    let (schema, _) = arrow_json::reader::infer_json_schema(&mut reader, None).unwrap();
    let schema = std::sync::Arc::new(schema);
    let file = std::io::BufReader::new(std::fs::File::open(&jsonl).unwrap());
    let batches: Vec<_> =
        arrow_json::ReaderBuilder::new(schema.clone()).build(file).unwrap().map(|b| b.unwrap()).collect();
    let parquet_path = work.path().join("conversations.parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&parquet_path).unwrap(), schema, None).unwrap();
    for b in &batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();

    let template = chat_fixtures().join("chatml.jinja");
    let flags = ["--chat-template", template.to_str().unwrap()];
    let (from_jsonl, from_parquet) = (work.path().join("jsonl"), work.path().join("parquet"));
    let a = tokenize_chat(&jsonl, &from_jsonl, &flags);
    let b = tokenize_chat(&parquet_path, &from_parquet, &flags);
    assert_eq!(a["written_docs"], b["written_docs"], "{a:#} {b:#}");
    let (mut x, mut y) = (read_chat_shards(&from_jsonl, Split::Train), read_chat_shards(&from_parquet, Split::Train));
    // A struct column's fields come in the schema's order (arrow-json's
    // inference sorts them), and a template's tojson writes them so.
    let (tool_call, _) = y.remove("tool-call").unwrap();
    x.remove("tool-call");
    let tok = tokenizers::Tokenizer::from_file(chat_fixtures().join("tokenizer.json")).unwrap();
    let text = tok.decode(&tool_call, false).unwrap();
    assert!(
        text.contains(r#""arguments": {"city": "Nantucket", "days": 2, "hourly": false, "unit": "celsius"}"#),
        "{text}"
    );
    assert_eq!(x.len(), 9);
    for (id, ours) in &x {
        assert!(y.get(id) == Some(ours), "{id}: Parquet and JSON Lines give different tokens or masks");
    }
}

#[test]
fn preference_pairs_become_adjacent_chosen_and_rejected_sequences() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("pairs");
    let template = chat_fixtures().join("llama3.jinja");
    let flags =
        ["--chat-template", template.to_str().unwrap(), "--validation-fraction", "0.2", "--shard-tokens", "3000"];
    let stats = tokenize_chat(&chat_fixtures().join("preferences.jsonl"), &out, &flags);
    assert_eq!((stats["pairs"].as_u64(), stats["written_docs"].as_u64()), (Some(130), Some(130)), "{stats:#}");
    let manifest = Manifest::load(&out.join("manifest.json")).unwrap();
    assert!(manifest.pairs && manifest.loss_mask);
    assert!(manifest.shards(Split::Train).count() > 2, "small shards, so that pairs meet shard ends");
    let tok = tokenizers::Tokenizer::from_file(chat_fixtures().join("tokenizer.json")).unwrap();
    for split in [Split::Train, Split::Validation] {
        for shard in manifest.shards(split) {
            // Every shard holds whole pairs, chosen then rejected, sharing their prompt.
            let mut ids = Vec::new();
            for batch in read_parquet(&out.join(&shard.name).with_extension("parquet")) {
                let column = batch.column_by_name("id").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
                ids.extend((0..batch.num_rows()).map(|i| column.value(i).to_owned()));
            }
            assert_eq!(ids.len() % 2, 0, "{}: a pair is split", shard.name);
            for pair in ids.chunks(2) {
                let stem = pair[0].strip_suffix("/chosen").unwrap_or_else(|| panic!("{:?}", pair));
                assert_eq!(pair[1], format!("{stem}/rejected"));
            }
        }
    }
    let docs = read_chat_shards(&out, Split::Train);
    let (chosen, chosen_mask) = docs.iter().find(|(k, _)| k.ends_with("pref-000/chosen")).map(|(_, v)| v).unwrap();
    let (rejected, rejected_mask) = &docs[&"pref-000/rejected".to_string()];
    let prompt = chosen_mask.iter().position(|&m| m == 1).unwrap();
    assert_eq!(chosen[..prompt], rejected[..prompt], "both completions follow the same prompt");
    assert!(rejected_mask[..prompt].iter().all(|&m| m == 0));
    let trained: Vec<u32> = chosen.iter().zip(chosen_mask).filter(|(_, &m)| m == 1).map(|(&t, _)| t).collect();
    assert_eq!(tok.decode(&trained, false).unwrap(), "The capital of France is Paris.<|eot_id|>");

    // The trainer's fixture is what this makes.
    let fresh = work.path().join("fixture");
    let flags = ["--chat-template", template.to_str().unwrap(), "--validation-fraction", "0.2"];
    tokenize_chat(&chat_fixtures().join("preferences.jsonl"), &fresh, &flags);
    for split in [Split::Train, Split::Validation] {
        assert!(
            read_chat_shards(&chat_fixtures().join("preference-tokens"), split) == read_chat_shards(&fresh, split),
            "fixtures/chat/preference-tokens is stale"
        );
    }

    // TRL's implicit prompt: two whole conversations sharing their start
    // give what the explicit record gives.
    let explicit = work.path().join("explicit.jsonl");
    let implicit = work.path().join("implicit.jsonl");
    let user = r#"{"role": "user", "content": "Capital of Peru?"}"#;
    let (good, bad) =
        (r#"{"role": "assistant", "content": "Lima."}"#, r#"{"role": "assistant", "content": "No idea."}"#);
    std::fs::write(
        &explicit,
        format!("{{\"id\": \"p\", \"prompt\": [{user}], \"chosen\": [{good}], \"rejected\": [{bad}]}}\n"),
    )
    .unwrap();
    std::fs::write(
        &implicit,
        format!(
            "{{\"id\": \"p\", \"chosen\": [{user}, {good}], \"rejected\": [{user}, {bad}]}}\n\
             {{\"id\": \"same\", \"chosen\": [{user}, {good}], \"rejected\": [{user}, {good}]}}\n"
        ),
    )
    .unwrap();
    let (a, b) = (work.path().join("explicit"), work.path().join("implicit"));
    tokenize_chat(&explicit, &a, &flags[..2]);
    let stats = tokenize_chat(&implicit, &b, &flags[..2]);
    assert_eq!(read_chat_shards(&a, Split::Train), read_chat_shards(&b, Split::Train));
    assert_eq!(stats["errors"]["chat_record"]["count"], 1, "identical conversations have no prompt to find: {stats:#}");

    // A dataset holds pairs or single conversations, not both.
    let mixed = work.path().join("mixed.jsonl");
    let mut text = std::fs::read_to_string(chat_fixtures().join("preferences.jsonl")).unwrap();
    text.push_str(&std::fs::read_to_string(chat_fixtures().join("conversations.jsonl")).unwrap());
    std::fs::write(&mixed, text).unwrap();
    let result = curate()
        .args(["tokenize", "--progress", "none", "--chat", "--input"])
        .arg(&mixed)
        .arg("--tokenizer")
        .arg(chat_fixtures().join("tokenizer.json"))
        .arg("--output")
        .arg(work.path().join("mixed"))
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("130 preference pairs (prompt, chosen, rejected) and 10 other records"),
        "{}",
        stderr(&result)
    );
}
