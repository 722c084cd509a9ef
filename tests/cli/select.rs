//! `curate select` on annotated output: the documents a condition keeps
//! (checked against the annotations themselves, and against Python
//! Polars), the accounting, and conditions refused before any work.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Float64Array, StringArray};
use serde_json::{json, Value};

use super::util::*;

/// A multi-shard annotated run over the fixtures: language ID (which sets
/// `language` on every document), Gopher quality and length annotated.
fn annotate(dir: &Path) -> PathBuf {
    let out = dir.join("annotated");
    let p = pipeline(
        dir,
        &format!(
            "[input]\npath = \"{}\"\nbatch_size = 16\n\
             [[step]]\ntype = \"language\"\n\
             [[step]]\ntype = \"gopher_quality\"\nname = \"quality\"\nmode = \"annotate\"\n\
             [[step]]\ntype = \"length\"\nmode = \"annotate\"\nmin_chars = 2000\n\
             [output]\npath = \"{}\"\n",
            root().join("fixtures/corpus").display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    out
}

/// The Parquet shards directly in `dir`, in name order.
fn shards(dir: &Path) -> Vec<PathBuf> {
    let mut shards: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    shards.sort();
    shards
}

/// Each document of the shards in `dir`: its id, words, language and the
/// length step's verdict, in shard order.
fn annotated_docs(dir: &Path) -> Vec<(String, Option<f64>, Option<String>, String)> {
    let mut docs = Vec::new();
    for shard in shards(dir) {
        for batch in read_parquet(&shard) {
            let strings = |name: &str| {
                batch.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone()
            };
            let (ids, languages, length) = (strings("id"), strings("language"), strings("length"));
            let words = batch.column_by_name("quality.words").unwrap();
            let words = words.as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..batch.num_rows() {
                docs.push((
                    ids.value(i).to_owned(),
                    words.is_valid(i).then(|| words.value(i)),
                    languages.is_valid(i).then(|| languages.value(i).to_owned()),
                    length.value(i).to_owned(),
                ));
            }
        }
    }
    docs
}

fn select(input: &Path, condition: &str, output: &Path, flags: &[&str]) -> std::process::Output {
    curate()
        .arg("select")
        .arg(input)
        .args(["--where", condition, "--progress", "none", "--output"])
        .arg(output)
        .args(flags)
        .output()
        .unwrap()
}

#[test]
fn select_keeps_the_documents_the_condition_holds_for_and_accounts_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    assert!(shards(&annotated).len() > 1, "a multi-shard input");
    let all = annotated_docs(&annotated);
    let condition = r#""quality.words" >= 80 AND language = 'en' AND length = 'keep'"#;
    let expected: Vec<&str> = all
        .iter()
        .filter(|(_, words, language, length)| {
            words.is_some_and(|w| w >= 80.0) && language.as_deref() == Some("en") && length == "keep"
        })
        .map(|(id, ..)| id.as_str())
        .collect();
    assert!(!expected.is_empty() && expected.len() < all.len(), "the condition keeps some and drops some");

    let out = dir.path().join("selected");
    let o = select(&annotated, condition, &out, &["--rejected"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kept = annotated_docs(&out);
    assert_eq!(kept.iter().map(|(id, ..)| id.as_str()).collect::<Vec<_>>(), expected);
    let stats = stats(&out);
    assert_eq!(stats["input_docs"], all.len());
    assert_eq!(stats["kept_docs"], expected.len());
    assert_eq!(stats["steps"][0]["name"], "select");
    assert_eq!(stats["steps"][0]["reasons"], json!({"select": all.len() - expected.len()}));
    // The rejected output names the step and reason of every document left out.
    let rejected: usize =
        shards(&out.join("rejected")).iter().flat_map(|s| read_parquet(s)).map(|b| b.num_rows()).sum();
    assert_eq!(rejected, all.len() - expected.len());

    // A rerun resumes (nothing to do); another condition is refused the folder.
    let again = select(&annotated, condition, &out, &["--rejected"]);
    assert!(again.status.success() && stderr(&again).contains("already complete"), "{}", stderr(&again));
    let other = select(&annotated, "language = 'fr'", &out, &[]);
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(stderr(&other).contains("holds the output of a different pipeline or input"), "{}", stderr(&other));
}

#[test]
fn bad_conditions_are_refused_before_any_work_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    let refused = |condition: &str| {
        let out = dir.path().join("never");
        let o = select(&annotated, condition, &out, &[]);
        assert_eq!(o.status.code(), Some(2), "{condition}: {}", stderr(&o));
        assert!(!out.exists(), "{condition}: nothing is written");
        stderr(&o)
    };
    let unknown = refused(r#""quality.wrds" >= 80"#);
    assert!(unknown.contains(r#"unknown field "quality.wrds"; the sampled documents have"#), "{unknown}");
    assert!(unknown.contains("quality.words"), "the fields there are are listed: {unknown}");
    let mismatch = refused("language > 3");
    assert!(mismatch.contains(r#""language" is a string"#), "{mismatch}");
    let syntax = refused("language = ");
    assert!(syntax.starts_with("curate: error: --where \"language = \": "), "{syntax}");
    let not_a_condition = refused(r#""quality.words" * 2"#);
    assert!(not_a_condition.contains("not true or false"), "{not_a_condition}");
}

#[test]
fn a_value_of_another_type_than_the_sample_is_its_documents_error_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    // The types are learnt from each file's first batch (1000 documents).
    let mut docs = generate_docs(1200, 3);
    for (i, doc) in docs.iter_mut().enumerate() {
        doc["score"] = json!(i % 10);
    }
    docs[1100]["score"] = json!("high");
    docs[1101]["score"] = Value::Null;
    write_jsonl(&input.join("a.jsonl"), &docs);
    let out = dir.path().join("out");
    let o = select(&input, "score >= 5", &out, &["--format", "jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats = stats(&out);
    let expected = (0..1200).filter(|&i| i != 1100 && i != 1101 && i % 10 >= 5).count();
    assert_eq!(stats["kept_docs"], expected);
    assert_eq!(stats["error_docs"], 1);
    let example = stats["errors"]["step_failed"]["examples"][0].as_str().unwrap();
    assert!(example.contains("doc-1100") && example.contains(r#"field "score" is "high""#), "{example}");
    assert_eq!(jsonl_docs(&out).len(), expected);

    // Within the sample, mixed types are refused before any work.
    docs[5]["score"] = json!("low");
    write_jsonl(&input.join("a.jsonl"), &docs);
    let o = select(&input, "score >= 5", &dir.path().join("out2"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(r#"field "score" holds both number and string values"#), "{}", stderr(&o));
}

/// The acceptance check: the same condition in Python Polars keeps the same
/// documents, on several conditions over the annotated fixtures.
#[test]
fn select_keeps_what_python_polars_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    let conditions = [
        r#""quality.words" >= 80 AND language = 'en'"#,
        r#"quality = 'keep' OR "quality.stop_words" < 2"#,
        r#"language IN ('de', 'fr') AND NOT ("quality.mean_word_length" > 5.5)"#,
        r#""length.chars" BETWEEN 1000 AND 20000 OR language_score IS NULL"#,
    ];
    let mut ours = BTreeMap::new();
    for (i, condition) in conditions.iter().enumerate() {
        let out = dir.path().join(format!("selected-{i}"));
        let o = select(&annotated, condition, &out, &[]);
        assert!(o.status.success(), "{condition}: {}", stderr(&o));
        let ids: Vec<String> = annotated_docs(&out).into_iter().map(|(id, ..)| id).collect();
        ours.insert(condition.to_string(), ids);
    }
    let mut args: Vec<&OsStr> = vec![annotated.as_os_str()];
    args.extend(conditions.iter().map(OsStr::new));
    let theirs: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&python_reference("polars_select.py", &args)).unwrap();
    for condition in conditions {
        assert!(!theirs[condition].is_empty(), "{condition} keeps something");
        assert_eq!(ours[condition], theirs[condition], "{condition}");
    }
}
