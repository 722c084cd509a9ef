//! Decontamination: `curate decont index` and the `decontaminate` step
//! against datatrove's NGramsDecontIndexer + NGramsDecontFilter, whose
//! decisions on the fixture are in fixtures/decont/datatrove.jsonl
//! (written by scripts/parity/decont_parity.py, which also checks the
//! index hash for hash); GPT-3's cut; bad benchmark files and indexes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn index(benchmarks: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    curate()
        .args(["decont", "index", "--input"])
        .arg(benchmarks)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .unwrap()
}

fn decontaminate(dir: &Path, input: &Path, index: &Path, options: &str, name: &str) -> (Vec<Value>, Vec<Value>) {
    let out = dir.join(name);
    let p = pipeline(
        dir,
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"decontaminate\"\nindex = \"{}\"\n{options}\
             [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
            input.display(),
            index.display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    assert_invariant(&stats(&out));
    (jsonl_docs(&out), jsonl_docs(&out.join("rejected")))
}

#[test]
fn decontamination_drops_what_datatrove_drops() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixture = root().join("fixtures/decont");
    let out = index(&fixture.join("benchmarks.jsonl"), &d.join("index"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta: Value = serde_json::from_slice(&fs::read(d.join("index/index.json")).unwrap()).unwrap();
    assert_eq!(meta["n"], 12);
    assert!(d.join("index/moby_qa.index.hashes").exists(), "datatrove's file names: spaces as underscores");

    let (kept, rejected) = decontaminate(d, &fixture.join("corpus.jsonl.gz"), &d.join("index"), "", "out");
    let mut ours: BTreeMap<String, (bool, Value, Value)> = BTreeMap::new();
    for doc in &kept {
        assert_eq!(doc["contaminated_ngram"], Value::Null);
        ours.insert(doc["id"].as_str().unwrap().to_owned(), (true, Value::Null, Value::Null));
    }
    for doc in &rejected {
        assert_eq!(doc["rejected_reason"], "contaminated");
        let decision = (false, doc["contaminated_ngram"].clone(), doc["contaminated_task"].clone());
        ours.insert(doc["id"].as_str().unwrap().to_owned(), decision);
    }
    let expected = fs::read_to_string(fixture.join("datatrove.jsonl")).unwrap();
    let mut contaminated = 0;
    for line in expected.lines() {
        let want: Value = serde_json::from_str(line).unwrap();
        let id = want["id"].as_str().unwrap();
        let got = ours.remove(id).unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(got, (want["kept"].as_bool().unwrap(), want["ngram"].clone(), want["task"].clone()), "{id}");
        contaminated += usize::from(!got.0);
    }
    assert!(ours.is_empty());
    assert!(contaminated > 100, "the fixture decides little: {contaminated} contaminated");
}

#[test]
fn gpt3_cut_removes_the_match_and_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let answer = "the whale rose slowly from the deep green sea and spouted twice before the startled crew";
    let bench = d.join("bench.jsonl");
    write_jsonl(&bench, &[serde_json::json!({"task": "whales", "query": "What did the whale do?", "text": answer})]);
    assert!(index(&bench, &d.join("index"), &[]).status.success());
    let before = "Call me Ishmael. ".repeat(30);
    let after = " Some years ago, never mind how long precisely, I thought I would sail about.".repeat(6);
    let docs = [
        serde_json::json!({"id": "one", "text": format!("{before}The Whale rose slowly from the deep green sea, and spouted twice before the startled crew{after}")}),
        serde_json::json!({"id": "clean", "text": before.clone()}),
        serde_json::json!({"id": "all", "text": format!("Then {answer}.")}),
        serde_json::json!({"id": "many", "text": (0..12).map(|_| format!("{before}{answer}.")).collect::<String>() + &before}),
    ];
    let input = d.join("in.jsonl");
    write_jsonl(&input, &docs);
    let (kept, rejected) = decontaminate(d, &input, &d.join("index"), "action = \"cut\"\nwindow = 50\n", "cut");
    let by_id: BTreeMap<&str, &Value> = kept.iter().map(|doc| (doc["id"].as_str().unwrap(), doc)).collect();
    let one = by_id["one"]["text"].as_str().unwrap();
    assert!(!one.to_lowercase().contains("spouted"), "{one}");
    // 50 characters on either side go with the match; the rest stays.
    assert_eq!(one, format!("{}\n{}", &before[..before.len() - 50], &after[50..]));
    assert_eq!(by_id["one"]["contaminated_task"], "whales");
    assert_eq!(by_id["clean"]["text"], before.as_str());
    let reasons: BTreeMap<&str, &str> =
        rejected.iter().map(|doc| (doc["id"].as_str().unwrap(), doc["rejected_reason"].as_str().unwrap())).collect();
    assert_eq!(reasons, BTreeMap::from([("all", "contaminated"), ("many", "contaminated")]), "nothing left; 13 pieces");
}

#[test]
fn bad_benchmarks_and_indexes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bench = d.join("bench.jsonl");
    fs::write(&bench, "{\"query\": \"q\", \"text\": \"an answer\"}\n{\"text\": \"no question\"}\n").unwrap();
    let out = index(&bench, &d.join("index"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bench.jsonl:2: no `query`"), "{}", stderr(&out));
    assert!(index(&bench, &d.join("index"), &["--find-query-ngrams"]).status.success());

    let input = d.join("in.jsonl");
    write_jsonl(&input, &[serde_json::json!({"id": "a", "text": "hello"})]);
    let empty = d.join("empty");
    fs::create_dir(&empty).unwrap();
    for (options, want) in [
        (format!("index = \"{}\"\nn = 13\n", d.join("index").display()), "n = 13, but the index was built with n = 12"),
        (format!("index = \"{}\"\n", empty.display()), "not a decontamination index"),
        (format!("index = \"{}\"\n", d.join("nowhere").display()), "cannot read index folder"),
    ] {
        let p = pipeline(
            d,
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"decontaminate\"\n{options}[output]\npath = \"{}\"\n",
                input.display(),
                d.join("out").display()
            ),
        );
        let out = run(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{options}");
        assert!(stderr(&out).contains(want), "{options}: {}", stderr(&out));
    }
}
