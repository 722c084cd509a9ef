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
    assert_eq!(a.len(), 2 + 6 + 6 * 14, "run.json, params.json, 6 unit markers, 6 × 14 band files");
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

fn buckets(work: &Path, flags: &[&str]) -> Output {
    curate().args(["dedup", "buckets", "--work"]).arg(work).args(flags).output().unwrap()
}

/// Groups of documents joined by the edges of every band.
fn components(work: &Path, docs: &[Value]) -> BTreeSet<BTreeSet<String>> {
    let params = curate::dedup::signatures::StageParams::load(work).unwrap();
    let mut parent: Vec<usize> = (0..docs.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            x = parent[x];
        }
        x
    }
    for band in 0..params.bands {
        let path = curate::dedup::buckets::edges_path(work, band);
        for ((_, a), (_, b)) in curate::dedup::buckets::read(&path, &params, band).unwrap() {
            let (ra, rb) = (root(&mut parent, a as usize), root(&mut parent, b as usize));
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut groups: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().insert(doc["id"].as_str().unwrap().to_owned());
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

#[test]
fn buckets_join_each_document_with_its_near_copies_only() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let one = dir.path().join("one");
    assert!(signatures(&input, &one, &[]).status.success());
    let out = buckets(&one, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected: BTreeSet<BTreeSet<String>> = (0..20)
        .map(|i| [docs[i]["id"].as_str().unwrap().to_owned(), format!("near-{i}")].into_iter().collect())
        .collect();
    let first = expected.iter().find(|g| g.contains("near-0")).unwrap().clone();
    expected.remove(&first);
    expected.insert(first.into_iter().chain(["copy-0".to_owned()]).collect());
    assert_eq!(components(&one, &docs), expected);

    // The cluster stage keeps the first of each group and lists the others.
    let out = curate().args(["dedup", "clusters", "--work"]).arg(&one).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("20 clusters of duplicates hold 41 documents; 21 of them are to be removed"),
        "{}",
        stderr(&out)
    );
    let params = curate::dedup::signatures::StageParams::load(&one).unwrap();
    let removals = curate::dedup::clusters::read(&curate::dedup::clusters::removals_path(&one), &params).unwrap();
    let id = |(_, doc): (u32, u32)| docs[doc as usize]["id"].as_str().unwrap().to_owned();
    let removed: BTreeSet<String> = removals.iter().map(|r| id(r.doc)).collect();
    let expected_removed: BTreeSet<String> = (0..20).map(|i| format!("near-{i}")).chain(["copy-0".into()]).collect();
    assert_eq!(removed, expected_removed);
    for r in &removals {
        let kept = id(r.kept);
        assert!(kept.starts_with("doc-"), "{kept} is kept for {}", id(r.doc));
    }

    // Two tasks share the bands and write the same files.
    let two = dir.path().join("two");
    assert!(signatures(&input, &two, &[]).status.success());
    for rank in ["0", "1"] {
        assert!(buckets(&two, &["--rank", rank, "--world-size", "2"]).status.success());
    }
    assert!(snapshot(&one.join("buckets")) == snapshot(&two.join("buckets")));
}

#[test]
fn the_bucket_stage_refuses_missing_or_damaged_signatures_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = root.join("fixtures/corpus");
    let work = dir.path().join("work");
    assert!(signatures(&input, &work, &["--rank", "0", "--world-size", "2"]).status.success());
    let out = buckets(&work, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the signatures of 3 of 6 units are missing (unit 1 first)"), "{}", stderr(&out));

    assert!(signatures(&input, &work, &["--rank", "1", "--world-size", "2"]).status.success());
    let damaged = band_path(&work, 4, 5);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() - 9]).unwrap();
    let out = buckets(&work, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("band-004/unit-000005.sig") && err.contains("truncated"), "{err}");
    std::fs::write(&damaged, b"garbage").unwrap();
    assert!(stderr(&buckets(&work, &[])).contains("not a curate signature file"));
    std::fs::write(&damaged, &bytes).unwrap();
    assert!(buckets(&work, &[]).status.success());
}

/// The whole MinHash dedup: signatures, buckets, clusters, then a pipeline
/// whose `dedup` step drops all but the first of each cluster.
#[test]
fn the_four_stages_remove_every_near_copy_and_keep_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let work = dir.path().join("work");
    assert!(signatures(&input, &work, &[]).status.success());
    assert!(buckets(&work, &[]).status.success());
    assert!(curate().args(["dedup", "clusters", "--work"]).arg(&work).status().unwrap().success());
    let run_with = |mode: &str, extra: &str| {
        let out = dir.path().join(format!("out-{mode}-{}", extra.len()));
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n{extra}[[step]]\ntype = \"dedup\"\nname = \"dedup\"\nmode = \"{mode}\"\nwork = \"{}\"\n\
                 [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
                input.display(),
                work.display(),
                out.display()
            ),
        );
        (run(&p, &[]), out)
    };
    let (o, out) = run_with("filter", "");
    assert!(o.status.success(), "{}", stderr(&o));
    let kept: BTreeSet<String> = jsonl_docs(&out).iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    let expected: BTreeSet<String> = docs[..60].iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kept, expected);
    let rejected = jsonl_docs(&out.join("rejected"));
    assert_eq!(rejected.len(), 21);
    assert!(rejected.iter().all(|d| d["rejected_reason"] == "minhash_duplicate"));
    assert_eq!(stats(&out)["steps"][0]["reasons"]["minhash_duplicate"], 21);

    let (o, out) = run_with("annotate", "");
    assert!(o.status.success(), "{}", stderr(&o));
    let annotated = jsonl_docs(&out);
    assert_eq!(annotated.len(), docs.len());
    let near0 = annotated.iter().find(|d| d["id"] == "near-0").unwrap();
    let first = annotated.iter().find(|d| d["id"] == docs[0]["id"]).unwrap();
    assert_eq!((near0["dedup"].as_str(), near0["dedup.cluster_size"].as_f64()), (Some("minhash_duplicate"), Some(3.0)));
    assert_eq!(
        (first["dedup"].as_str(), first["dedup.cluster"].as_f64()),
        (Some("keep"), near0["dedup.cluster"].as_f64())
    );
    let loner = annotated.iter().find(|d| d["id"] == docs[59]["id"]).unwrap();
    assert!(loner["dedup.cluster"].is_null());

    // Another split of the input would name documents differently: refused.
    let (o, _) = run_with("filter", "split_bytes = \"1KiB\"\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not the input"), "{}", stderr(&o));
}

/// Exact dedup through the same stages: `exact` finds copies that differ
/// only in case, punctuation, spacing, numbers or accents; `exact-raw`
/// only byte-identical ones.
#[test]
fn exact_methods_remove_copies_and_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        serde_json::json!({"id": "a", "text": "The café opened in 1999, on Main Street."}),
        serde_json::json!({"id": "b", "text": "the cafe opened in 2024 on main street"}),
        serde_json::json!({"id": "c", "text": "The café opened in 1999, on Main Street."}),
        serde_json::json!({"id": "d", "text": "A different sentence altogether."}),
        serde_json::json!({"id": "e", "text": "..."}),
    ];
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    for (method, kept) in [("exact", vec!["a", "d", "e"]), ("exact-raw", vec!["a", "b", "d", "e"])] {
        let work = dir.path().join(format!("work-{method}"));
        let out = signatures(&input, &work, &["--method", method]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{method} signatures (1 bands × 2 rows)")), "{}", stderr(&out));
        assert!(buckets(&work, &[]).status.success());
        assert!(curate().args(["dedup", "clusters", "--work"]).arg(&work).status().unwrap().success());
        let output = dir.path().join(format!("out-{method}"));
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"dedup\"\nwork = \"{}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
                input.display(),
                work.display(),
                output.display()
            ),
        );
        run_ok(&p, &[]);
        let ids: Vec<String> = jsonl_docs(&output).iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, kept, "{method}");
        let dropped = stats(&output)["steps"][0]["reasons"]["exact_duplicate"].as_u64().unwrap();
        assert_eq!(dropped as usize, docs.len() - kept.len());
    }
}
