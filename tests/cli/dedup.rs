//! `curate dedup signatures`: the MinHash signature stage on real files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use curate::dedup::minhash::MinHashConfig;
use curate::dedup::sigfile;
use curate::dedup::signatures::band_path;
use serde_json::Value;

use curate::runtime::hooks;

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
            for r in sigfile::read(&band_path(work, band, unit), &config, band, unit as u32).unwrap().iter() {
                buckets.entry(r.hashes.to_vec()).or_default().push(r.place.index as usize);
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
fn one_task_and_eight_tasks_write_the_same_files_and_keep_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(300, 5);
    for (i, chunk) in docs.chunks(50).enumerate() {
        write_jsonl_zst(&input.join(format!("part-{i}.jsonl.zst")), chunk);
    }
    let one = dir.path().join("one");
    assert!(signatures(&input, &one, &["--threads", "1"]).status.success());
    let eight = dir.path().join("eight");
    for rank in 0..8 {
        let out = signatures(&input, &eight, &["--rank", &rank.to_string(), "--world-size", "8", "--threads", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) = (snapshot(&one.join("signatures")), snapshot(&eight.join("signatures")));
    assert_eq!(
        a.len(),
        2 + 6 + 6 + 6 * 14,
        "run.json, params.json, 6 unit markers, 6 document files, 6 × 14 band files"
    );
    assert!(a == b, "the files differ");
    assert!(buckets(&one, &[]).status.success());
    for rank in 0..8 {
        assert!(buckets(&eight, &["--rank", &rank.to_string(), "--world-size", "8"]).status.success());
    }
    assert!(snapshot(&one.join("buckets")) == snapshot(&eight.join("buckets")));
    for work in [&one, &eight] {
        let out = curate().args(["dedup", "clusters", "--work"]).arg(work).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) = (snapshot(&one.join("clusters")), snapshot(&eight.join("clusters")));
    assert!(a.len() == 2 && a == b, "the removal lists or kept ids differ");
}

#[test]
fn a_rerun_skips_finished_units_and_redoes_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
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
    let root = root();
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
    let ranges = curate::dedup::buckets::ranges(work).unwrap();
    for part in curate::dedup::buckets::Part::all(params.bands, ranges) {
        let path = curate::dedup::buckets::edges_path(work, part);
        for (a, b) in curate::dedup::buckets::read(&path, &params, part).unwrap() {
            let (ra, rb) = (root(&mut parent, a.index as usize), root(&mut parent, b.index as usize));
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
        stderr(&out).contains("20 clusters of duplicates hold 41 of 81 documents; 21 of them are to be removed"),
        "{}",
        stderr(&out)
    );
    let params = curate::dedup::signatures::StageParams::load(&one).unwrap();
    let removals = curate::dedup::clusters::read(&curate::dedup::clusters::removals_path(&one), &params).unwrap();
    let id = |place: curate::io::doc::Place| docs[place.index as usize]["id"].as_str().unwrap().to_owned();
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

    // Bands cut into 3 hash ranges, shared by 2 tasks: other files, the same clusters.
    let ranged = dir.path().join("ranged");
    assert!(signatures(&input, &ranged, &[]).status.success());
    for rank in ["0", "1"] {
        let out = buckets(&ranged, &["--ranges", "3", "--rank", rank, "--world-size", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(snapshot(&ranged.join("buckets")).len(), 14 * 3 + 1, "42 parts and ranges.json");
    assert_eq!(components(&ranged, &docs), components(&one, &docs));
    let out = buckets(&ranged, &["--ranges", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cut bands into 3 ranges, not 2"), "{}", stderr(&out));
    assert!(curate().args(["dedup", "clusters", "--work"]).arg(&ranged).status().unwrap().success());
    assert!(snapshot(&one.join("clusters")) == snapshot(&ranged.join("clusters")));
}

#[test]
fn the_bucket_stage_refuses_missing_or_damaged_signatures_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
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
    // Missing signatures refuse the stage (2); a damaged one fails it (1).
    assert_eq!(out.status.code(), Some(1));
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
    // Each rejected copy names the document kept in its place.
    for d in &rejected {
        let id = d["id"].as_str().unwrap();
        let twin = if id == "copy-0" { 0 } else { id["near-".len()..].parse().unwrap() };
        assert_eq!(d["duplicate_of"], docs[twin]["id"], "{id}");
    }

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
    // The cluster is named by its kept document's place in the input.
    let near5 = annotated.iter().find(|d| d["id"] == "near-5").unwrap();
    assert_eq!((first["dedup.cluster"].as_f64(), near5["dedup.cluster"].as_f64()), (Some(0.0), Some(5.0)));
    assert_eq!(near5["duplicate_of"], docs[5]["id"]);
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
    // Without number normalisation, 1999 and 2024 differ (datatrove's TextNormConfig(norm_numbers=False)).
    let no_numbers = "lowercase,whitespace,punctuation,diacritics";
    for (method, normalize, kept) in [
        ("exact", None, vec!["a", "d", "e"]),
        ("exact-raw", None, vec!["a", "b", "d", "e"]),
        ("exact", Some(no_numbers), vec!["a", "b", "d", "e"]),
    ] {
        let work = dir.path().join(format!("work-{method}-{}", normalize.is_some()));
        let mut flags = vec!["--method", method];
        if let Some(steps) = normalize {
            flags.extend(["--normalize", steps]);
        }
        let out = signatures(&input, &work, &flags);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{method} signatures (1 bands × 2 rows)")), "{}", stderr(&out));
        assert!(buckets(&work, &[]).status.success());
        assert!(curate().args(["dedup", "clusters", "--work"]).arg(&work).status().unwrap().success());
        let output = dir.path().join(format!("out-{method}-{}", normalize.is_some()));
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

/// Runs the three stages into `work` with `flags` for the signatures, then
/// the `dedup` step over `input`; returns the kept and the rejected documents.
fn dedup_through(dir: &Path, input: &Path, work: &Path, flags: &[&str], format: &str) -> (Vec<Value>, Vec<Value>) {
    let out = signatures(input, work, flags);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(buckets(work, &[]).status.success());
    let out = curate().args(["dedup", "clusters", "--work"]).arg(work).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let output = dir.join(format!("out-{}", work.file_name().unwrap().to_string_lossy()));
    let p = pipeline(
        dir,
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"dedup\"\nwork = \"{}\"\n[output]\npath = \"{}\"\nformat = \"{format}\"\nrejected = true\n",
            input.display(),
            work.display(),
            output.display()
        ),
    );
    run_ok(&p, &[]);
    if format == "jsonl" {
        return (jsonl_docs(&output), jsonl_docs(&output.join("rejected")));
    }
    let rows = |dir: &Path| -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        let mut rows = Vec::new();
        for f in files {
            for batch in read_parquet(&f) {
                let mut writer = arrow_json::ArrayWriter::new(Vec::new());
                writer.write(&batch).unwrap();
                writer.finish().unwrap();
                rows.extend(serde_json::from_slice::<Vec<Value>>(&writer.into_inner()).unwrap());
            }
        }
        rows
    };
    (rows(&output), rows(&output.join("rejected")))
}

fn ids(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["id"].as_str().unwrap()).collect()
}

/// `--priority`: each cluster keeps its document with the highest value of a
/// field (ties and documents without one: the first), and the rejected
/// copies name it, in Parquet output too.
#[test]
fn a_priority_field_chooses_the_kept_copy() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        serde_json::json!({"id": "a", "score": 1, "text": "The café opened in 1999, on Main Street."}),
        serde_json::json!({"id": "b", "score": "7.5", "text": "the cafe opened in 2024 on main street"}),
        serde_json::json!({"id": "c", "score": 7.5, "text": "The café opened in 1999, on Main Street."}),
        serde_json::json!({"id": "d", "text": "A different sentence altogether."}),
        serde_json::json!({"id": "e", "text": "a different sentence altogether"}),
        serde_json::json!({"id": "f", "score": 0, "text": "A different sentence altogether!"}),
    ];
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let (kept, rejected) = dedup_through(dir.path(), &input, &dir.path().join("w1"), &["--method", "exact"], "jsonl");
    assert_eq!((ids(&kept), ids(&rejected)), (vec!["a", "d"], vec!["b", "c", "e", "f"]));
    let flags = ["--method", "exact", "--priority", "score"];
    let (kept, rejected) = dedup_through(dir.path(), &input, &dir.path().join("w2"), &flags, "parquet");
    // b and c tie at 7.5 (b's is a string holding a number): b is first.
    assert_eq!((ids(&kept), ids(&rejected)), (vec!["b", "f"], vec!["a", "c", "d", "e"]));
    let twins: Vec<&str> = rejected.iter().map(|d| d["duplicate_of"].as_str().unwrap()).collect();
    assert_eq!(twins, ["b", "b", "f", "f"]);
    let counts: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("w2/signatures/stats/rank-00000-of-00001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(counts["missing_priority"], 2);
}

/// `--index`: new data deduplicated against an earlier dataset loses every
/// document that has a copy there, and among its own copies keeps the
/// first; the earlier dataset's own duplicates are not reported.
#[test]
fn new_data_is_deduplicated_against_an_index_of_an_earlier_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus();
    // The earlier dataset: documents 0..30 and a copy of document 1 (its own duplicate).
    let old: Vec<Value> = docs[..30]
        .iter()
        .cloned()
        .chain([serde_json::json!({"id": "old-copy-1", "text": docs[1]["text"].clone()})])
        .collect();
    let old_input = dir.path().join("old.jsonl");
    write_jsonl(&old_input, &old);
    let old_work = dir.path().join("old-work");
    assert!(signatures(&old_input, &old_work, &[]).status.success());
    // The new data: near copies of documents 0..20 (of which 0..20 are in the
    // index), documents 40..60 (not in it), and a copy of document 45.
    let new: Vec<Value> = docs[60..80]
        .iter()
        .chain(&docs[40..60])
        .cloned()
        .chain([serde_json::json!({"id": "new-copy-45", "text": docs[45]["text"].clone()})])
        .collect();
    let new_input = dir.path().join("new.jsonl");
    write_jsonl(&new_input, &new);
    let index = old_work.to_str().unwrap();
    let (kept, rejected) =
        dedup_through(dir.path(), &new_input, &dir.path().join("new-work"), &["--index", index], "jsonl");
    let expected_kept: Vec<&str> = ids(&docs[40..60]);
    assert_eq!(ids(&kept), expected_kept);
    let mut expected_rejected: Vec<&str> = ids(&docs[60..80]);
    expected_rejected.push("new-copy-45");
    assert_eq!(ids(&rejected), expected_rejected);
    for d in &rejected {
        let id = d["id"].as_str().unwrap();
        let twin = match id {
            "new-copy-45" => docs[45]["id"].as_str().unwrap().to_owned(),
            near => docs[near["near-".len()..].parse::<usize>().unwrap()]["id"].as_str().unwrap().to_owned(),
        };
        assert_eq!(d["duplicate_of"].as_str(), Some(twin.as_str()), "{id}");
    }
    let counts: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("new-work/clusters/stats.json")).unwrap()).unwrap();
    assert_eq!((counts["removed_docs"].as_u64(), counts["removed_for_index"].as_u64()), (Some(21), Some(20)));

    // An index made with other parameters cannot be matched: refused by name.
    let out = signatures(&new_input, &dir.path().join("other"), &["--index", index, "--seed", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("old-work") && stderr(&out).contains("cannot be matched"), "{}", stderr(&out));
    // Said as a person reads it, not as Rust's debug output (issue 13, defect 12).
    assert!(
        stderr(&out).contains("its signatures were made with minhash of 5-word shingles, 14 bands × 8 rows, seed 1, text normalised by lowercase, whitespace, punctuation, diacritics, numbers; this run uses minhash of 5-word shingles, 14 bands × 8 rows, seed 2"),
        "{}",
        stderr(&out)
    );
}

/// Line-level dedup: `curate dedup lines` counts normalised lines over the
/// corpus, and the `line_dedup` step removes those seen more than
/// `max_repeats` times, dropping documents left with nothing.
#[test]
fn boilerplate_lines_are_removed_and_the_rest_of_each_text_stays() {
    const NAMES: [&str; 6] = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo"];
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for i in 0..6 {
        let text = format!(
            "Accept all cookies{}\nThe story of {} begins on a quiet morning in town number {}.\n\n\
             Copyright {} Example Inc.\r\nIts ending, different every time: {}.",
            ["", "!"][i % 2],
            NAMES[i],
            i * 7,
            2019 + i,
            ["rain", "snow", "sun", "fog", "wind", "hail"][i]
        );
        docs.push(serde_json::json!({"id": format!("d{i}"), "text": text}));
    }
    // A line seen twice only: under max_repeats = 2, it stays.
    docs.push(serde_json::json!({"id": "twice-a", "text": "A rare line.\nAlpha."}));
    docs.push(serde_json::json!({"id": "twice-b", "text": "a RARE line\nBeta."}));
    docs.push(
        serde_json::json!({"id": "all-boilerplate", "text": "ACCEPT ALL COOKIES\n---\nCopyright 2031 Example Inc."}),
    );
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_jsonl(&input.join("a.jsonl"), &docs[..4]);
    write_jsonl(&input.join("b.jsonl"), &docs[4..]);
    // A line that is not JSON is counted as an error and named, not lost.
    std::fs::write(input.join("c.jsonl"), "{not json\n").unwrap();
    let count = |work: &Path, flags: &[&str]| {
        let out = curate()
            .args(["dedup", "lines", "--progress", "none", "--input"])
            .arg(&input)
            .arg("--work")
            .arg(work)
            .args(flags)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let work = dir.path().join("work");
    let err = count(&work, &[]);
    assert!(err.contains("in 3 units (0 done before)") && err.contains("1 errors"), "{err}");
    assert!(err.contains("invalid_json, first at") && err.contains("c.jsonl"), "{err}");
    // Two tasks write the same counts.
    let two = dir.path().join("two");
    for rank in ["0", "1"] {
        count(&two, &["--rank", rank, "--world-size", "2"]);
    }
    assert!(snapshot(&work.join("lines")) == snapshot(&two.join("lines")));
    // A rerun skips what verifies and recounts a damaged unit.
    let damaged = curate::dedup::lines::counts_path(&work, 1);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() - 5]).unwrap();
    let err = count(&work, &[]);
    assert!(
        err.contains("unit-000001.counts") && err.contains("counting unit 1 again") && err.contains("(2 done before)"),
        "{err}"
    );
    assert!(snapshot(&work.join("lines")) == snapshot(&two.join("lines")));

    let run_mode = |mode: &str| {
        let out = dir.path().join(format!("out-{mode}"));
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"line_dedup\"\nname = \"lines\"\nmode = \"{mode}\"\nwork = \"{}\"\nmax_repeats = 2\n\
                 [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
                input.display(),
                work.display(),
                out.display()
            ),
        );
        run_ok(&p, &[]);
        out
    };
    let out = run_mode("filter");
    let kept = jsonl_docs(&out);
    assert_eq!(kept.len(), 8);
    for (i, d) in kept.iter().take(6).enumerate() {
        let weather = ["rain", "snow", "sun", "fog", "wind", "hail"][i];
        let expected = format!(
            "The story of {} begins on a quiet morning in town number {}.\n\nIts ending, different every time: {weather}.",
            NAMES[i],
            i * 7
        );
        assert_eq!(d["text"].as_str().unwrap(), expected);
    }
    assert_eq!(kept[6]["text"], "A rare line.\nAlpha.");
    let rejected = jsonl_docs(&out.join("rejected"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (rejected[0]["id"].as_str(), rejected[0]["rejected_reason"].as_str()),
        (Some("all-boilerplate"), Some("all_lines_duplicated"))
    );
    let s = stats(&out);
    assert_eq!(s["steps"][0]["totals"]["removed_lines"].as_f64(), Some(14.0), "{}", s["steps"][0]);

    let annotated = jsonl_docs(&run_mode("annotate"));
    assert_eq!(annotated.len(), docs.len());
    assert_eq!(annotated[0]["text"], docs[0]["text"], "annotate mode leaves the text alone");
    assert_eq!(
        (annotated[0]["lines.removed_lines"].as_f64(), annotated[0]["lines.removed_fraction"].as_f64()),
        (Some(2.0), Some(0.5))
    );
    assert_eq!(annotated[6]["lines.removed_lines"].as_f64(), Some(0.0));
}

/// SimHash through the same stages: near copies (one word of 100 or more
/// changed) land within 10 bits of their original and are removed; the
/// unrelated documents all stay. A pair's distance is not certain to be 3
/// or less, so the test asks for most pairs, and checks each removal.
#[test]
fn simhash_removes_near_copies_and_keeps_every_original() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let out =
        signatures(&input, &dir.path().join("bad"), &["--method", "simhash", "--max-distance", "6", "--blocks", "6"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--blocks (6) must exceed --max-distance (6)"), "{}", stderr(&out));
    let work = dir.path().join("work");
    // One changed word of 100 flips about 5 of 64 bits (the expected
    // distance is 64 × angle / π): short documents need a wider distance than
    // the default 3, which suits long web pages.
    let flags = ["--method", "simhash", "--n-grams", "3", "--max-distance", "10", "--blocks", "12"];
    let (kept, rejected) = dedup_through(dir.path(), &input, &work, &flags, "jsonl");
    let params = curate::dedup::signatures::StageParams::load(&work).unwrap();
    assert_eq!((params.bands, params.rows, params.max_distance, params.blocks), (66, 2, 10, 12));
    let originals: BTreeSet<&str> = ids(&docs[..60]).into_iter().collect();
    assert!(originals.iter().all(|id| ids(&kept).contains(id)), "an original was removed");
    assert!(rejected.len() >= 18, "only {} of 21 copies found", rejected.len());
    for d in &rejected {
        assert_eq!(d["rejected_reason"], "simhash_duplicate");
        let id = d["id"].as_str().unwrap();
        let twin = if id == "copy-0" { 0 } else { id["near-".len()..].parse().unwrap() };
        // The kept document is the original, or for copy-0 possibly near-0 when the original is farther.
        let kept_id = d["duplicate_of"].as_str().unwrap();
        assert!(kept_id == docs[twin]["id"] || (id == "copy-0" && kept_id == "near-0"), "{id} → {kept_id}");
    }
    assert!(rejected.iter().any(|d| d["id"] == "copy-0"), "an exact copy is at distance 0");
    // The defaults: distance 3 over 6 blocks, 20 tables.
    let default = dir.path().join("default");
    assert!(signatures(&input, &default, &["--method", "simhash"]).status.success());
    let params = curate::dedup::signatures::StageParams::load(&default).unwrap();
    assert_eq!((params.bands, params.max_distance, params.blocks), (20, 3, 6));
}

/// Starts `curate dedup ARGS` with the stage paused (the test hook) before
/// committing its `files`-th file, then kills it with SIGKILL.
fn kill_midway(args: &[&std::ffi::OsStr], files: u32) {
    kill_at_pause(curate().arg("dedup").args(args).env(hooks::PAUSE_AFTER_FILES, files.to_string()), || {});
}

/// Each stage killed midway (a file half-committed under its temporary
/// name, others done) and run again ends with the files of a run that was
/// never killed: no duplicates, no holes.
#[test]
fn each_stage_killed_midway_resumes_to_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(300, 9);
    for (i, chunk) in docs.chunks(50).enumerate() {
        write_jsonl(&input.join(format!("part-{i}.jsonl")), chunk);
    }
    let os = |s: &str| std::ffi::OsString::from(s);
    let stages = |work: &Path| -> Vec<(Vec<std::ffi::OsString>, u32)> {
        let w = work.as_os_str().to_owned();
        let i = input.as_os_str().to_owned();
        let common = |stage: &str| vec![os(stage), os("--work"), w.clone()];
        let with_input = |stage: &str| {
            let mut a = common(stage);
            a.extend([os("--input"), i.clone(), os("--threads"), os("1"), os("--progress"), os("none")]);
            a
        };
        // 6 units × (14 band files + 1 document file + 1 marker): pause at the 40th file.
        vec![(with_input("signatures"), 40), (common("buckets"), 5), (common("clusters"), 2), (with_input("lines"), 3)]
    };
    let clean = dir.path().join("clean");
    for (args, _) in stages(&clean) {
        let out = curate().arg("dedup").args(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let killed = dir.path().join("killed");
    for (args, files) in stages(&killed) {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        kill_midway(&refs, files);
        let stage = args[0].to_str().unwrap();
        let folder = killed.join(if stage == "clusters" || stage == "buckets" || stage == "lines" {
            stage
        } else {
            "signatures"
        });
        let names: Vec<String> = files_under(&folder);
        assert!(names.iter().any(|n| n.ends_with(".tmp")), "{stage}: no file half-committed in {names:?}");
        if stage == "clusters" {
            assert!(!names.iter().any(|n| n.ends_with("remove.dups")), "{names:?}");
        }
        let out = curate().arg("dedup").args(&args).output().unwrap();
        assert!(out.status.success(), "{stage}: {}", stderr(&out));
    }
    let files = |work: &Path| {
        let mut all = BTreeMap::new();
        for stage in ["signatures", "buckets", "clusters", "lines"] {
            for (name, bytes) in snapshot(&work.join(stage)) {
                all.insert(format!("{stage}/{name}"), bytes);
            }
        }
        all
    };
    let (a, b) = (files(&clean), files(&killed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(b[name] == *bytes, "{name} differs");
    }
}

/// `curate dedup all` runs the three stages locally, as one task each, and
/// leaves what the stages run one by one leave.
#[test]
fn one_command_runs_every_stage_locally() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus();
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let staged = dir.path().join("staged");
    assert!(signatures(&input, &staged, &[]).status.success());
    assert!(buckets(&staged, &[]).status.success());
    assert!(curate().args(["dedup", "clusters", "--work"]).arg(&staged).status().unwrap().success());
    let all = dir.path().join("all");
    // A launcher's variables would make a stage one task of many: `all` is always the only task.
    let out = curate()
        .args(["dedup", "all", "--progress", "none", "--input"])
        .arg(&input)
        .arg("--work")
        .arg(&all)
        .env("WORLD_SIZE", "4")
        .env("RANK", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("21 of them are to be removed") && stderr(&out).contains("type = \"dedup\""),
        "{}",
        stderr(&out)
    );
    for stage in ["signatures", "buckets", "clusters"] {
        assert!(snapshot(&staged.join(stage)) == snapshot(&all.join(stage)), "{stage} differs");
    }
    let out =
        curate().args(["dedup", "all", "--rank", "0", "--input"]).arg(&input).arg("--work").arg(&all).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("runs every stage as one task"), "{}", stderr(&out));
}

/// `--shingles chars`: MinHash over character n-grams of the normalised text
/// finds the same near copies, and a text without spaces too.
#[test]
fn character_shingles_find_near_copies_in_text_without_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let (mut docs, _) = corpus();
    // Unspaced text: the corpus's words glued together, and a copy with one letter changed.
    let glued: String = docs[0]["text"].as_str().unwrap().split(' ').take(60).collect();
    let mut changed = glued.clone().into_bytes();
    changed[100] = if changed[100] == b'x' { b'y' } else { b'x' };
    docs.push(serde_json::json!({"id": "glued", "text": glued}));
    docs.push(serde_json::json!({"id": "glued-copy", "text": String::from_utf8(changed).unwrap()}));
    let input = dir.path().join("docs.jsonl");
    write_jsonl(&input, &docs);
    let flags = ["--shingles", "chars", "--n-grams", "9"];
    let (_, rejected) = dedup_through(dir.path(), &input, &dir.path().join("chars"), &flags, "jsonl");
    let mut removed: Vec<&str> = ids(&rejected);
    removed.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("near-{i}")).collect();
    expected.extend(["copy-0".to_string(), "glued-copy".to_string()]);
    expected.sort();
    assert_eq!(removed, expected);
    // Word shingles see the glued text as one word: no signature, no match.
    let (_, rejected) = dedup_through(dir.path(), &input, &dir.path().join("words"), &[], "jsonl");
    assert!(!ids(&rejected).contains(&"glued-copy"));
    // Signatures of another shingle kind are refused in the same folder.
    let out = signatures(&input, &dir.path().join("chars"), &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// The line-dedup merge opens every unit's counts file at once: under a low
/// soft limit of open files it lifts the limit (towards the hard one)
/// rather than failing.
#[test]
fn the_line_merge_lifts_a_low_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Letters, not digits: numbers normalise to 0 and would make every line one.
    let name = |i: usize| -> String { [i / 26, i % 26].iter().map(|&k| (b'a' + k as u8) as char).collect() };
    for i in 0..120 {
        let docs = [
            serde_json::json!({"id": format!("d{i}"), "text": format!("Shared footer line\nUnique line {} here.", name(i))}),
        ];
        write_jsonl(&input.join(format!("part-{i:03}.jsonl")), &docs);
    }
    let work = dir.path().join("work");
    let out = curate()
        .args(["dedup", "lines", "--progress", "none", "--input"])
        .arg(&input)
        .arg("--work")
        .arg(&work)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let output = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"line_dedup\"\nwork = \"{}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
            input.display(),
            work.display(),
            output.display()
        ),
    );
    let bin = env!("CARGO_BIN_EXE_curate");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn 60 && exec '{bin}' run '{}' --progress none", p.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = jsonl_docs(&output);
    assert_eq!(kept.len(), 120);
    assert!(kept.iter().all(|d| d["text"].as_str().unwrap().starts_with("Unique line")));
}

/// A file rewritten at the same size after the signature stage read it (a
/// shuffle, an edit) is not the input the stages name documents in: the
/// `dedup` step refuses it rather than drop the wrong documents, and the
/// signature stage refuses to resume over it. See: issue 13, defect 2.
#[test]
fn r13_an_input_rewritten_at_the_same_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let docs = generate_docs(200, 3);
    let copies: Vec<Value> = docs[..100]
        .iter()
        .enumerate()
        .map(|(i, d)| serde_json::json!({"id": format!("copy-{i:03}"), "text": d["text"]}))
        .collect();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &[docs.clone(), copies.clone()].concat());
    let work = dir.path().join("work");
    let out =
        curate().args(["dedup", "all", "--progress", "none", "--input"]).arg(&input).arg("--work").arg(&work).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::metadata(&input).unwrap().modified().unwrap();

    // The same lines in another order: the same size, the same file name.
    let mut shuffled = [docs, copies].concat();
    shuffled.reverse();
    write_jsonl(&input, &shuffled);
    assert_ne!(std::fs::metadata(&input).unwrap().modified().unwrap(), written, "the rewrite has a new time");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"dedup\"\nwork = \"{}\"\n[output]\npath = \"{}\"\n",
            input.display(),
            work.display(),
            dir.path().join("out").display()
        ),
    );
    let refused = run(&p, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("is not the input `curate dedup signatures` read"), "{}", stderr(&refused));
    assert!(!dir.path().join("out").exists());
    let again = signatures(&input, &work, &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("holds signatures of another input"), "{}", stderr(&again));
}

/// A resumed `curate run` whose input was edited at the same size since
/// the first attempt is refused, not mixed. See: issue 13, defect 2.
#[test]
fn r13_a_run_does_not_resume_over_an_edited_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(40, 5);
    write_jsonl(&input.join("a.jsonl"), &docs[..20]);
    write_jsonl(&input.join("b.jsonl"), &docs[20..]);
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
            input.display(),
            dir.path().join("out").display()
        ),
    );
    run_ok(&p, &[]);
    // One character changed, the size kept.
    let path = input.join("b.jsonl");
    let text = std::fs::read_to_string(&path).unwrap().replacen("whale", "whalE", 1);
    std::fs::write(&path, text).unwrap();
    let resumed = run(&p, &[]);
    assert_eq!(resumed.status.code(), Some(2), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("holds the output of a different pipeline or input"), "{}", stderr(&resumed));
}

/// A rerun of a finished bucket stage reports the signatures it was made
/// from, not 0. See: issue 13, defect 12.
#[test]
fn r13_a_rerun_of_the_bucket_stage_keeps_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    assert!(signatures(&root().join("fixtures/corpus"), &work, &[]).status.success());
    let stats_of = || {
        let out = buckets(&work, &["--ranges", "2"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let path = work.join("buckets/stats/rank-00000-of-00001.json");
        serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap()
    };
    let first = stats_of();
    assert!(first["records"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(stats_of(), first);
}
