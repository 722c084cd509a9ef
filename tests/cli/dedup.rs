//! `curate dedup signatures`: the MinHash signature stage on real files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use curate::dedup::minhash::MinHashConfig;
use curate::dedup::sigfile;
use curate::dedup::signatures::band_path;
use serde_json::Value;

use crate::util::*;

fn signatures(input: &Path, work: &Path, flags: &[&str]) -> Output {
    curate()
        .args(["dedup", "signatures", "--progress", "none", "--input"])
        .arg(input)
        .arg("--work")
        .arg(work)
        .args(flags)
        .output()
        .unwrap()
}

/// 60 generated documents of 100 words or more, a near copy of each of the
/// first 20 (one word changed), and an exact copy of document 0.
fn corpus() -> (Vec<Value>, Vec<(String, String)>) {
    let mut docs: Vec<Value> = generate_docs(400, 11)
        .into_iter()
        .filter(|d| d["text"].as_str().unwrap().split(' ').count() >= 100)
        .take(60)
        .collect();
    let mut pairs = Vec::new();
    for i in 0..20 {
        let mut words: Vec<String> = docs[i]["text"].as_str().unwrap().split(' ').map(str::to_owned).collect();
        words[50] = "leviathan".into();
        let id = format!("near-{i}");
        pairs.push((docs[i]["id"].as_str().unwrap().to_owned(), id.clone()));
        docs.push(serde_json::json!({"id": id, "text": words.join(" ")}));
    }
    docs.push(serde_json::json!({"id": "copy-0", "text": docs[0]["text"].clone()}));
    pairs.push((docs[0]["id"].as_str().unwrap().to_owned(), "copy-0".into()));
    // The copy of document 0 is as near to its near copy as document 0 is.
    pairs.push(("near-0".into(), "copy-0".into()));
    (docs, pairs)
}

/// Pairs of document ids that share a bucket (the same hashes in one band).
fn shared_buckets(work: &Path, docs: &[Value], units: usize) -> BTreeSet<(String, String)> {
    let config = MinHashConfig::default();
    let mut pairs = BTreeSet::new();
    for band in 0..config.bands {
        let mut buckets: BTreeMap<Vec<u64>, Vec<usize>> = BTreeMap::new();
        for unit in 0..units {
            for r in sigfile::read(&band_path(work, band, unit), &config, band, unit as u32).unwrap() {
                buckets.entry(r.hashes).or_default().push(r.doc as usize);
            }
        }
        for members in buckets.values() {
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    let (x, y) = (docs[a]["id"].as_str().unwrap(), docs[b]["id"].as_str().unwrap());
                    pairs.insert((x.min(y).to_owned(), x.max(y).to_owned()));
                }
            }
        }
    }
    pairs
}

#[test]
fn near_copies_share_a_bucket_and_other_documents_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, pairs) = corpus();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let work = dir.path().join("work");
    let out = signatures(&input, &work, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Value =
        serde_json::from_slice(&std::fs::read(work.join("signatures/stats/rank-00000-of-00001.json")).unwrap())
            .unwrap();
    assert_eq!(stats["signed_docs"], docs.len());
    let shared = shared_buckets(&work, &docs, 1);
    let expected: BTreeSet<(String, String)> =
        pairs.iter().map(|(a, b)| (a.clone().min(b.clone()), a.clone().max(b.clone()))).collect();
    for pair in &expected {
        assert!(shared.contains(pair), "{pair:?} share no bucket");
    }
    assert_eq!(shared.difference(&expected).count(), 0, "{:?}", shared.difference(&expected).collect::<Vec<_>>());
}

#[test]
fn one_task_and_three_tasks_write_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(300, 5);
    for (i, chunk) in docs.chunks(50).enumerate() {
        write_jsonl_zst(&input.join(format!("part-{i}.jsonl.zst")), chunk);
    }
    let one = dir.path().join("one");
    assert!(signatures(&input, &one, &["--threads", "1"]).status.success());
    let three = dir.path().join("three");
    for rank in 0..3 {
        let out = signatures(&input, &three, &["--rank", &rank.to_string(), "--world-size", "3", "--threads", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) = (snapshot(&one.join("signatures")), snapshot(&three.join("signatures")));
    assert_eq!(a.len(), 1 + 6 + 6 * 14, "run.json, 6 unit markers, 6 × 14 band files");
    assert!(a == b, "the files differ");
}

#[test]
fn a_rerun_skips_finished_units_and_redoes_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = root.join("fixtures/corpus");
    let work = dir.path().join("work");
    assert!(signatures(&input, &work, &[]).status.success());
    let before = snapshot(&work.join("signatures"));
    let damaged = band_path(&work, 7, 2);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = signatures(&input, &work, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("band-007/unit-000002.sig") && err.contains("truncated") && err.contains("computing unit 2 again"),
        "{err}"
    );
    assert!(before == snapshot(&work.join("signatures")), "the redone unit differs");
    let again = signatures(&input, &work, &[]);
    assert!(!stderr(&again).contains("again"), "{}", stderr(&again));
}

#[test]
fn other_parameters_in_the_same_work_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = root.join("fixtures/corpus/moby_dick.jsonl.zst");
    let work = dir.path().join("work");
    assert!(signatures(&input, &work, &[]).status.success());
    let out = signatures(&input, &work, &["--threshold", "0.9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("another input or other parameters"), "{}", stderr(&out));
    assert_eq!(signatures(&input, &work, &["--rows", "0"]).status.code(), Some(2));
}
